"""The README stays a few screens and every page it leads to stays reachable and complete: each
setting the code reads is in docs/settings.md, each command and sub-command in docs/cli.md,
and every relative link and anchor resolves."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from orgsync.services.commands import cli

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_anchor(m) for m in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix}{name}")
                found += _commands(sub, f"{prefix}{name} ")
    return found


def test_the_readme_is_a_few_screens_and_keeps_the_test_command_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 228  # a few screens
    assert "make test " in readme and "make demo " in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}, which does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in _anchors(linked), f"{page.name} links to {target}: no such heading"


def test_the_readme_leads_to_every_reference_page() -> None:
    readme = (ROOT / "README.md").read_text()
    for page in DOCS.glob("*.md"):
        if page.name != "performance-contention.md":  # reached through performance.md
            assert f"docs/{page.name}" in readme, f"README.md does not lead to docs/{page.name}"


def test_every_setting_the_code_reads_is_in_the_settings_page() -> None:
    code = "\n".join(
        p.read_text() for d in ("services", "pipelines") for p in (ROOT / d).rglob("*.py")
    )
    used = set(re.findall(r"\bORGSYNC_[A-Z_]+[A-Z]\b", code)) - {"ORGSYNC_TEST_DATABASE_URL"}
    documented = (DOCS / "settings.md").read_text()
    assert sorted(v for v in used if v not in documented) == []


def test_every_command_is_in_the_command_reference() -> None:
    reference = (DOCS / "cli.md").read_text()
    missing = [c for c in _commands(cli.parser()) if f"orgsync {c}" not in reference]
    assert missing == []
