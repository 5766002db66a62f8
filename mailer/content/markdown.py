"""Markdown in issues: one parser, raw HTML off, output sanitised, and a plain-text twin.

Editors write Markdown; readers get either the HTML (through an allow-list, so
nothing but formatting and safe links reaches the email) or readable plain text
with each link's address after its text.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode
from markupsafe import Markup

from mailer.content.urls import url_problem

TEXT_WIDTH = 72
ALLOWED_TAGS = {
    "p", "br", "strong", "em", "b", "i", "s", "del", "code", "pre", "blockquote", "hr",
    "ul", "ol", "li", "h2", "h3", "h4", "a", "img",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "ol": {"start"}}
# Attributes for an image, from its address as written: where it is served from, and its size.
ImageAttributes = Callable[[str], Mapping[str, str]]


class _SeeingEveryLink(MarkdownIt):
    """markdown-it quietly leaves `javascript:` links as text; to report them, see every link."""

    def validateLink(self, url: str) -> bool:
        return True


@lru_cache(maxsize=2)
def _parser(checking: bool = False) -> MarkdownIt:
    # CommonMark with raw HTML off: `<script>` in an issue is text, never markup. No smart quotes:
    # titles, headings, link notes and the catalogue keep the quotes the editor typed, so must the body.
    kind = _SeeingEveryLink if checking else MarkdownIt
    return kind("commonmark", {"html": False, "typographer": True}).enable(["strikethrough", "replacements"])


@dataclass(frozen=True)
class FoundLink:
    url: str
    text: str
    image: bool
    line_offset: int  # line within the Markdown text, from 0


def links(source: str) -> list[FoundLink]:
    """Every link and image in `source`, including those markdown-it would refuse to render."""
    found = []
    for block in _parser(checking=True).parse(source):
        offset = block.map[0] if block.map else 0
        open_link: tuple[str, list[str]] | None = None
        for token in block.children or ():
            if token.type == "link_open":
                open_link = (str(token.attrs.get("href", "")), [])
            elif token.type == "link_close" and open_link:
                found.append(FoundLink(open_link[0], "".join(open_link[1]).strip(), False, offset))
                open_link = None
            elif token.type == "image":
                found.append(FoundLink(str(token.attrs.get("src", "")), token.content, True, offset))
            elif open_link and token.type in ("text", "code_inline"):
                open_link[1].append(token.content)
            elif token.type in ("softbreak", "hardbreak"):
                offset += 1
    return found


def heading_count(source: str) -> int:
    """How many subheadings (`## ...`) a Markdown text has."""
    return sum(token.type == "heading_open" for token in _parser().parse(source))


def link_problems(source: str) -> list[tuple[int, str]]:
    """(line offset, message) for each link or image whose address breaks the URL rule."""
    problems = []
    for link in links(source):
        problem = url_problem(link.url, image=link.image)
        if problem:
            problems.append((link.line_offset, f"link {link.url!r}: {problem}"))
    return problems


def to_html(source: str, image: ImageAttributes | None = None) -> Markup:
    """Sanitised HTML, safe to put into a template unescaped; `image` gives each image its address and size."""
    parser = _parser()
    tokens = parser.parse(source)
    if image:
        for token in tokens:
            for child in token.children or ():
                if child.type == "image":
                    child.attrs.update(image(str(child.attrs.get("src", ""))))
    rendered = parser.renderer.render(tokens, parser.options, {})
    return Markup(nh3.clean(rendered, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES, url_schemes={"https", "http", "mailto"}))


def to_text(source: str, width: int = TEXT_WIDTH) -> str:
    """Readable plain text: wrapped paragraphs, `- ` lists, `> ` quotes, links as `text (address)`."""
    root = SyntaxTreeNode(_parser().parse(source))
    return "\n\n".join(_block(child, width) for child in root.children).strip()


def _wrap(text: str, width: int, first: str = "", rest: str = "") -> str:
    lines = []
    for line in text.split("\n"):  # hard breaks stay breaks
        lines.append(textwrap.fill(line, width=max(width, 20), initial_indent=first, subsequent_indent=rest,
                                   break_long_words=False, break_on_hyphens=False) or first.rstrip())
        first = rest
    return "\n".join(lines)


def _block(node: SyntaxTreeNode, width: int) -> str:
    kind = node.type
    if kind == "paragraph" or kind == "heading":
        return _wrap(_inline_text(node.children[0], with_urls=True), width)
    if kind in ("bullet_list", "ordered_list"):
        start = int(node.attrs.get("start", 1)) if kind == "ordered_list" else 0
        items = []
        for number, item in enumerate(node.children, start=start):
            marker = f"{number}. " if kind == "ordered_list" else "- "
            body = "\n".join(_block(child, width - len(marker)) for child in item.children)
            items.append(textwrap.indent(body, " " * len(marker)).replace(" " * len(marker), marker, 1))
        return "\n".join(items)
    if kind == "blockquote":
        body = "\n\n".join(_block(child, width - 2) for child in node.children)
        return "\n".join(f"> {line}".rstrip() for line in body.split("\n"))
    if kind in ("fence", "code_block"):
        return textwrap.indent(node.content.rstrip("\n"), "    ")
    if kind == "hr":
        return "-" * 20
    return "\n\n".join(_block(child, width) for child in node.children)


def _inline_text(node: SyntaxTreeNode, with_urls: bool = False) -> str:
    parts = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind == "softbreak":
            parts.append(" ")
        elif kind == "hardbreak":
            parts.append("\n")
        elif kind == "link":
            text, url = _inline_text(child), str(child.attrs.get("href", ""))
            shown = url.removeprefix("mailto:")
            parts.append(text if not with_urls or text == shown else f"{text} ({shown})")
        elif kind == "image":  # its alt text, in brackets as in the section images'; nothing when decorative
            alt = _inline_text(child) or child.content
            parts.append(f"[{alt}]" if alt.strip() else "")
        else:  # strong, em, s: keep their text
            parts.append(_inline_text(child, with_urls))
    return "".join(parts)
