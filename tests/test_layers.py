"""The stages import only the stages below them (the README's loop, one way), lazy
imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "tutelage"

# Lowest first. A module may import its own part and anything listed before it.
LAYERS = [
    "storable",
    "records",
    "settings",
    "files",
    "store",
    "formats",
    "interchange",
    "generation",
    "workspace",
    "quality",
    "datasets",
    "training",
    "evaluation",
    "web",
    "demo",
    "cli",
]


def part_of(module: str) -> str | None:
    """Return the part of `tutelage.X...` (None for the package root)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 and pieces[0] == "tutelage" else None


def imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def test_every_part_has_a_layer() -> None:
    parts = {p.stem if p.is_file() else p.name for p in SOURCE.iterdir()}
    parts -= {"__init__", "__main__", "__pycache__", "py"}
    assert sorted(parts - set(LAYERS)) == []


@pytest.mark.parametrize("layer", LAYERS)
def test_a_stage_imports_only_the_stages_below_it(layer: str) -> None:
    allowed = set(LAYERS[: LAYERS.index(layer) + 1])
    paths = [SOURCE / f"{layer}.py"] if (SOURCE / f"{layer}.py").is_file() else []
    paths += sorted((SOURCE / layer).rglob("*.py")) if (SOURCE / layer).is_dir() else []
    wrong = [
        f"{path.relative_to(SOURCE)}:{line} imports {module}"
        for path in paths
        for line, module in imports(path)
        if part_of(module) is not None and part_of(module) not in allowed
    ]
    assert wrong == []
