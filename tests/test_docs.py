"""The guide and the code agree: every page is linked from the README, every link lands,
and every command the README and the guide show is a command that exists."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from test_cli import command_paths

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [REPO / "README.md", *PAGES]


def test_every_guide_page_is_linked_from_the_readme() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert PAGES, "the guide has no pages"
    for page in PAGES:
        assert f"](docs/{page.name})" in readme, f"the README does not link docs/{page.name}"


def test_every_relative_link_lands_on_a_file() -> None:
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            path = target.split("#", 1)[0]
            if not path or "://" in path:
                continue
            where = document.relative_to(REPO)
            assert (document.parent / path).exists(), f"{where} links to missing {target}"


def shown_commands(text: str) -> list[list[str]]:
    """The words after `tutelage` on each command line of the text's bash blocks."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            for i, word in enumerate(words):
                if word == "tutelage" or word.endswith("/tutelage"):
                    commands.append(words[i + 1 :])
                    break
    return commands


def test_every_command_shown_exists() -> None:
    known = {tuple(path) for path in command_paths()}
    groups = {path[0] for path in known if len(path) > 1}
    seen = 0
    for document in DOCUMENTS:
        for words in shown_commands(document.read_text(encoding="utf-8")):
            if not words or words[0].startswith("-"):  # `tutelage --help`
                continue
            name = tuple(words[:2]) if words[0] in groups else (words[0],)
            assert name in known, f"{document.relative_to(REPO)} shows unknown `tutelage {words}`"
            seen += 1
    assert seen >= 40  # the guide shows most commands at work
