"""The README and the manuals stay true: every relative link resolves, and the tables made from code match it.

A link is checked when its target is a path in this repository (not a URL): the file or folder must exist, and
an ``#anchor`` into a markdown file must name one of its headings, spelled the way GitHub spells heading
anchors. Links inside code (fenced blocks, backtick spans) are not links and are skipped. The exit-code table
in the command reference is ``app.core.errors.exit_code_table()`` verbatim, so the manual changes with the code.
No model is needed: this reads text only.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.errors import exit_code_table

ROOT = Path(__file__).resolve().parents[2]
CLI_MANUAL = ROOT / "docs" / "cli.md"
# docs/notes/ is left out: each note records one merged branch as it was, links included, and is not edited later.
PAGES = sorted([ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "installer" / "README.md", *ROOT.glob("docs/*.md")])
_LINK = re.compile(r"!?\[([^\]]*)\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"`[^`]*`")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line outside code: fenced blocks, and indented blocks after a blank line."""
    out: list[tuple[int, str]] = []
    fenced = indented = False
    previous_blank = True
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            # four spaces open a code block only after a blank line; elsewhere they continue a paragraph
            indented = line.startswith("    ") and (previous_blank or indented)
            if not indented:
                out.append((number, line))
        previous_blank = not line.strip()
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = _LINK.sub(lambda m: m.group(1), heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown page (a repeated heading gets -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """'page:line: target (why)' for each relative link of ``page`` that does not resolve (page named from root)."""
    problems: list[str] = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_CODE_SPAN.sub("", line)):
            target = match.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            dest = (page.parent / path_part).resolve() if path_part else page
            where = f"{page.relative_to(root)}:{number}: {target}"
            if not dest.exists():
                problems.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                problems.append(f"{where} (no heading with that anchor in {dest.name})")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_checker_finds_a_broken_file_and_a_broken_anchor(tmp_path: Path) -> None:
    # a checker that matched nothing would pass every page: prove it catches both kinds of breakage
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## Exit codes (`app/core/errors.py`)\n")
    page.write_text(
        "[ok](other.md#exit-codes-appcoreerrorspy) [gone](missing.md) [bad](other.md#nope) [self](#top)\n"
        "`[code](missing.md)` [web](https://example.org/x)\n\n```\n[fenced](missing.md)\n```\n\n"
        "    [indented code](missing.md)\n\n# Top\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "page.md:1: missing.md (no such file)",
        "page.md:1: other.md#nope (no heading with that anchor in other.md)",
    ]


def test_repeated_headings_get_numbered_anchors(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# Notes\n\n## README\n\n## README\n\n```\n# not a heading\n```\n")
    assert anchors(page) == {"notes", "readme", "readme-1"}


def test_cli_manual_holds_the_exit_code_table_from_the_code() -> None:
    # app.core.errors.EXIT_CODES is the one table; the manual must show it as `python -m app.core.errors` prints it
    assert exit_code_table() in CLI_MANUAL.read_text(encoding="utf-8")


def test_readme_names_the_two_commands_the_makefile_defines() -> None:
    # .ci/run runs `make test` as "exactly the README's test command"; both targets must exist in the Makefile
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("run", "test"):
        assert re.search(rf"^make {target}\b", readme, re.M), f"README lost `make {target}`"
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile lost the `{target}` target"
