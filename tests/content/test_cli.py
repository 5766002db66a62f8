"""The `mailer issue` commands, run as an editor runs them (click's CliRunner)."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from email import message_from_bytes, policy
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from mailer.cli import main
from mailer.content.preview import Preview, make_server
from tests.content.conftest import SAMPLE_BILINGUAL, SAMPLE_EN


def run(*args: str):
    return CliRunner().invoke(main, ["issue", *args], catch_exceptions=False)


def test_new_writes_a_valid_skeleton(cli_env, workdir):
    result = run("new", "2027-01")
    assert result.exit_code == 0, result.output
    path = workdir / "issues" / "2027-01.yaml"
    assert "Wrote issues/2027-01.yaml" in result.output
    assert run("validate", str(path)).exit_code == 0
    again = run("new", "2027-01")
    assert again.exit_code == 1 and "already exists" in again.output
    assert run("new", "../escape").exit_code == 1
    default = run("new")
    assert default.exit_code == 0 and "issues/20" in default.output
    [fresh] = [path for path in (workdir / "issues").glob("*.yaml") if path.name != "2027-01.yaml"]
    assert run("lint", str(fresh)).exit_code == 0  # the skeleton is a clean example


def test_validate_reports_every_problem_and_exit_code(cli_env, workdir):
    bad = workdir / "bad.yaml"
    bad.write_text('title: "News"\ndate: 2026-12-01\nsections:\n  - heading: x\n    button: {label: Go, url: "javascript:x"}\n')
    result = run("validate", str(SAMPLE_EN), str(bad))
    assert result.exit_code == 1
    assert f"{SAMPLE_EN}: ok" in result.output
    assert "bad.yaml:5:30: sections[0].button.url: javascript: addresses are not allowed here" in result.output
    syntax = workdir / "syntax.yaml"
    syntax.write_text("title: [unclosed\n")
    result = run("validate", str(syntax))
    assert result.exit_code == 1 and "syntax.yaml:2:1: YAML syntax error" in result.output


def test_lint_clean_and_with_warnings(cli_env, workdir):
    clean = run("lint", str(SAMPLE_BILINGUAL))
    assert clean.exit_code == 0 and "no warnings" in clean.output
    shabby = workdir / "shabby.yaml"
    shabby.write_text('title: "News"\ndate: 2026-12-01\nsections:\n  - body: "[click here](http://example.org)"\n')
    result = run("lint", str(shabby))
    assert result.exit_code == 1
    assert "shabby.yaml:1:1: preheader: no preheader" in result.output
    assert "http:// link" in result.output and "'click here'" in result.output


def test_lint_without_settings_says_what_is_missing(workdir):
    from mailer.cli import common

    common.settings.cache_clear()
    result = run("lint", str(SAMPLE_EN))
    common.settings.cache_clear()
    assert result.exit_code == 1 and "secret_key: is missing" in result.output and "Traceback" not in result.output


def test_build_writes_html_text_mjml_and_eml(cli_env, workdir):
    result = run("build", str(SAMPLE_BILINGUAL))
    assert result.exit_code == 0, result.output
    out = workdir / "build"
    for extension in ("html", "txt", "mjml", "eml", "nameless.eml"):
        path = out / f"2026-12-network-launch.{extension}"
        assert path.stat().st_size > 1000
        assert str(Path("build") / path.name) in result.output
    assert "KB" in result.output
    html = (out / "2026-12-network-launch.html").read_text()
    assert '<html lang="cy"' in html and "__MAILER_" in html  # the built HTML keeps its placeholders
    message = message_from_bytes((out / "2026-12-network-launch.eml").read_bytes(), policy=policy.default)
    assert message["To"] == "Siân Roberts <reader@example.org>"
    assert message["List-Unsubscribe"].strip().startswith("<https://news.example.org/u/")
    assert "Annwyl Siân Roberts," in message.get_body(("plain",)).get_content()
    assert "__MAILER_" not in message.as_string()


def test_build_one_language_into_a_folder(cli_env, workdir):
    result = run("build", str(SAMPLE_BILINGUAL), "-o", "out", "--language", "en")
    assert result.exit_code == 0, result.output
    assert '<html lang="en"' in (workdir / "out" / "2026-12-network-launch.html").read_text()
    refused = run("build", str(SAMPLE_EN), "--language", "cy")
    assert refused.exit_code == 1 and "not written in Welsh" in refused.output


def test_build_refuses_an_invalid_issue(cli_env, workdir):
    bad = workdir / "bad.yaml"
    bad.write_text("title: x\n")
    result = run("build", str(bad))
    assert result.exit_code == 1 and "bad.yaml:1:1: date: is required" in result.output


def test_schema_is_json_schema(cli_env, workdir):
    result = run("schema")
    schema = json.loads(result.output)
    assert schema["title"] == "mailer newsletter issue"
    assert {"title", "date", "sections", "languages"} <= set(schema["properties"])
    assert run("schema", "-o", "issue.schema.json").exit_code == 0
    assert json.loads((workdir / "issue.schema.json").read_text()) == schema


def test_schema_accepts_the_samples_and_refuses_what_validate_refuses(cli_env):
    """What an editor's YAML plugin checks as they type agrees with `validate`."""
    validator = jsonschema.Draft202012Validator(json.loads(run("schema").output))
    validator.check_schema(validator.schema)

    def as_json(path: Path) -> dict:
        return json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))

    for sample in (SAMPLE_EN, SAMPLE_BILINGUAL):
        assert list(validator.iter_errors(as_json(sample))) == [], sample
    local = as_json(SAMPLE_EN)
    local["sections"][2]["image"] = {"src": "photos/cafe.jpg", "alt": ""}  # a file beside the issue; decorative
    assert list(validator.iter_errors(local)) == []
    local["sections"][2]["image"]["src"] = "data:image/png;base64,AAAA"
    assert [list(error.path) for error in validator.iter_errors(local)] == [["sections", 2, "image"]]
    bad = as_json(SAMPLE_EN)
    bad["sections"][0]["button"]["url"] = "javascript:alert(1)"
    bad["sections"][1]["heding"] = "Typo"
    bad["preheader"] = {"en": "Hi", "fr": "Salut"}
    assert sorted(list(error.path) for error in validator.iter_errors(bad)) == [
        ["preheader"], ["sections", 0, "button"], ["sections", 1]]  # an optional field is checked as a whole


def fetch(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return response.read().decode("utf-8")


@pytest.fixture
def preview_server(settings, tmp_path):
    issue = tmp_path / "issue.yaml"
    shutil.copy(SAMPLE_EN, issue)
    server = make_server(Preview(issue, settings, None), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield issue, server.server_address[1]
    server.shutdown()
    server.server_close()


def test_preview_on_a_port_in_use_or_a_missing_file_is_a_clean_error(cli_env, preview_server):
    issue, port = preview_server
    taken = run("preview", str(issue), "--port", str(port))
    assert taken.exit_code == 1 and f"cannot serve the preview on 127.0.0.1:{port}" in taken.output
    missing = run("preview", "missing.yaml")
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_preview_serves_both_widths_and_text_and_rerenders(preview_server):
    issue, port = preview_server
    page = fetch(port, "/")
    assert 'width="600"' in page and 'width="375"' in page and "Dear Sam Jones," in page
    assert "http" not in page.split("<body>")[0].replace("http-equiv", "")  # nothing from elsewhere
    email = fetch(port, "/email.html")
    assert email.startswith("<!doctype html>") and "__MAILER_" not in email
    version = fetch(port, "/version")
    assert fetch(port, "/version") == version  # nothing changed, nothing re-rendered

    time.sleep(0.01)
    issue.write_text(issue.read_text().replace("All together: an open letter", "Changed title"), encoding="utf-8")
    assert fetch(port, "/version") != version
    assert "Changed title" in fetch(port, "/email.html")

    issue.write_text("title: [broken\n", encoding="utf-8")
    assert "YAML syntax error" in fetch(port, "/")
    assert "reload.js" in fetch(port, "/") and "location.reload" in fetch(port, "/reload.js")
