"""/media/NAME: the images issues take from the editor's folder, as `mailer.content.images` published them.

One exact path per file: the name must be one the publisher makes (letters, digits and dashes,
a content hash, .jpg/.png/.gif), so no request can reach anything else in `media_dir` or outside it.
A name is its content, so a file never changes and browsers may keep it for a year.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse

from mailer.content.images import CONTENT_TYPES, media_file
from mailer.web.context import web

router = APIRouter()

IMMUTABLE = {"cache-control": "public, max-age=31536000, immutable"}


@router.get("/media/{name}")
def media(name: str, request: Request) -> FileResponse:
    path = media_file(web(request).settings, name)
    if path is None:
        raise HTTPException(404)
    return FileResponse(path, media_type=CONTENT_TYPES[path.suffix.lstrip(".")], headers=IMMUTABLE)
