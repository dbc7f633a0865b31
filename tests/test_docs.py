"""Every relative link in README.md, CHANGELOG.md and docs/*.md points to a file that exists, and every
``#anchor`` (on its own or after a ``.md`` file) is a heading of its target, slugged as GitHub does.
Links to web addresses (``http://``, ``https://``, ``mailto:``) are not checked."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", REPO / "CHANGELOG.md", *sorted((REPO / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.S)
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$", re.M)
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$", re.M)
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # http:, https:, mailto:, ...


def prose(text: str) -> str:
    """The Markdown without fenced code blocks and code spans, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    body = prose(text)
    return [m.group(1) for m in INLINE.finditer(body)] + [m.group(1) for m in REFERENCE.finditer(body)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: the rendered text lower-cased, punctuation but ``-`` and ``_`` dropped,
    spaces to ``-``."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings; a repeated slug gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", path.read_text(encoding="utf-8"))):
        s = slug(m.group(2))
        n = seen.get(s, 0)
        out.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return out


def broken_links(path: Path) -> list[str]:
    """One line per link of ``path`` that does not resolve: a missing file, or an anchor that is no heading."""
    bad = []
    for target in links(path.read_text(encoding="utf-8")):
        if not target or EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not dest.exists():
            bad.append(f"{path.name}: {target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
            bad.append(f"{path.name}: {target}: no heading #{anchor} in {dest.name}")
    return bad


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path):
    assert path.is_file(), path
    assert broken_links(path) == []


def test_docs_exist():
    assert (REPO / "docs").is_dir() and len(DOCS) > 3


def test_the_checker_finds_broken_links_and_anchors(tmp_path):
    (tmp_path / "other.md").write_text(
        "# A title\n\n## Step 1. Environment (`conda`)\n\n## Step 1. Environment (`conda`)\n"
    )
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here, and there?\n\n"
        "[ok](other.md) [ok](other.md#a-title) [ok](other.md#step-1-environment-conda) "
        "[ok](other.md#step-1-environment-conda-1) [ok](#here-and-there) [web](https://example.org/x.md#nope)\n"
        "`[in code](missing.md)`\n\n```\n[in a block](missing.md)\n```\n"
        "[gone](missing.md) [bad anchor](other.md#no-such) [bad local](#nowhere)\n[ref]: missing2.md\n"
    )
    bad = broken_links(page)
    assert len(bad) == 4, bad
    assert any("missing.md" in b for b in bad) and any("missing2.md" in b for b in bad)
    assert any("#no-such" in b for b in bad) and any("#nowhere" in b for b in bad)
