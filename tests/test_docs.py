"""The README and docs/ stay honest: their links resolve, their tables render on GitHub with every cell, the
`raysweep` commands they show are valid invocations of files that exist and validate, and they speak of the project
rather than of how it was built."""

import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted([README, REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md")])
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)|\!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```(\w*)\s*$")


def _rel(p: Path) -> str:
    return str(p.relative_to(REPO))


def _prose(text: str):
    """(line number, line) outside fenced code blocks."""
    inside = False
    for i, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line.strip()):
            inside = not inside
            continue
        if not inside:
            yield i, line


def _blocks(text: str):
    """(language, [lines]) of each fenced code block."""
    lang, lines = None, []
    for line in text.splitlines():
        m = FENCE.match(line.strip())
        if m and lang is None:
            lang, lines = m.group(1) or "text", []
        elif m:
            yield lang, lines
            lang = None
        elif lang is not None:
            lines.append(line)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"[`*]", "", heading.strip().lower())
    h = re.sub(r"[^\w\- ]", "", h)
    return h.replace(" ", "-")


def _anchors(md: Path):
    return {_slug(line.lstrip("#")) for _, line in _prose(md.read_text()) if line.startswith("#")}


def test_readme_is_a_product_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 250, "README.md over 250 lines: depth goes to docs/"
    for heading in ("## Install and run", "## Quickstart", "## Do the papers' claims hold?", "## Your own sweep",
                    "## GPUs and clusters", "## Documentation", "## Citation", "## License"):
        assert heading in text, heading


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_relative_links_resolve(page):
    bad = []
    for n, line in _prose(page.read_text()):
        for m in LINK.finditer(line):
            target = m.group(1) or m.group(2)
            if re.match(r"^[a-z]+:", target) or target.startswith("#") and not target[1:]:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                bad.append(f"{_rel(page)}:{n}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
                bad.append(f"{_rel(page)}:{n}: {target} (no heading with that anchor)")
            elif dest.exists() and REPO not in dest.parents and dest != REPO:
                bad.append(f"{_rel(page)}:{n}: {target} (outside the repository)")
    assert not bad, "\n".join(bad)


def _cells(row: str) -> int:
    row = row.strip()
    row = re.sub(r"\\\|", "", row)  # an escaped pipe is cell content
    return len(row.strip("|").split("|"))


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_tables_have_as_many_cells_as_their_header(page):
    bad, header = [], None
    for n, line in _prose(page.read_text()):
        s = line.strip()
        if not s.startswith("|"):
            header = None
            continue
        if header is None:
            header = (n, _cells(s))
        elif _cells(s) != header[1]:
            bad.append(f"{_rel(page)}:{n}: {_cells(s)} cells, its header (line {header[0]}) has {header[1]}")
    assert not bad, "\n".join(bad)


# Words about how the work was done, not about the project
PROCESS_TALK = [r"\bissue[s]? #?\d+", r"\bof mine\b", r"\bthis session\b", r"\bthis (last )?round\b", r"time ran out",
                r"\bthe issue'?s goal\b", r"machine this project is lent", r"\bnot re-run since\b", r"methods\.md §"]


@pytest.mark.parametrize("page", PAGES, ids=_rel)
def test_the_project_speaks_for_itself(page):
    text = page.read_text()
    found = [f"{_rel(page)}: {m.group(0)!r}" for p in PROCESS_TALK for m in re.finditer(p, text, re.I)]
    assert not found, "\n".join(found)


def _raysweep_lines():
    for page in (README, REPO / "docs" / "cli.md"):
        for lang, lines in _blocks(page.read_text()):
            if lang not in ("bash", "sh"):
                continue
            for line in lines:
                cmd = line.split("#", 1)[0].strip()
                m = re.match(r"^(?:\.venv/bin/)?raysweep\s+(.*)$", cmd)
                if m:
                    yield pytest.param(shlex.split(m.group(1)), id=f"{page.name}: {cmd[:60]}")


@pytest.mark.parametrize("argv", list(_raysweep_lines()))
def test_commands_shown_are_valid_invocations(argv):
    """Each `raysweep …` line parses with the real command line, and its YAML exists and validates with its --set
    (the data and the model are checked by the tests that run these spaces)."""
    from raysweep.cli import build_parser
    from raysweep.config import load_config

    args = build_parser().parse_args(argv)
    if getattr(args, "file", None):
        path = REPO / args.file
        assert path.is_file(), args.file
        load_config(path, getattr(args, "set", None) or [], getattr(args, "only", None) or [])


def test_readme_yaml_is_the_shipped_search_space():
    """The README's example is a file users can run as it is shown."""
    import yaml

    shown = [yaml.safe_load("\n".join(lines)) for lang, lines in _blocks(README.read_text()) if lang == "yaml"]
    assert shown, "README shows no YAML"
    shipped = yaml.safe_load((REPO / "search_spaces" / "fp_better.yaml").read_text())
    assert shown[0] == shipped


def test_license_and_citation_match_the_package():
    import tomllib

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["license"]["text"] == "Apache-2.0"
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()
    cff = (REPO / "CITATION.cff").read_text()
    assert f"version: {meta['version']}" in cff and "license: Apache-2.0" in cff
