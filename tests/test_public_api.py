"""Each public module lists its API in __all__, and every listed name exists."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

MODULES = [
    "tutelage",
    "tutelage.records",
    "tutelage.settings",
    "tutelage.files",
    "tutelage.store",
    "tutelage.formats",
    "tutelage.interchange",
    "tutelage.generation",
    "tutelage.workspace",
    "tutelage.quality",
    "tutelage.datasets",
    "tutelage.training",
    "tutelage.evaluation",
    "tutelage.web",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, f"{name} has an empty __all__"
    for exported in module.__all__:
        assert hasattr(module, exported), f"{name}.__all__ lists missing {exported}"


def test_the_library_does_not_import_torch_until_a_model_is_used() -> None:
    code = (
        "import sys, tutelage.cli, tutelage.generation, tutelage.interchange\n"
        "import tutelage.evaluation, tutelage.evaluation.records\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["False", "False"], result.stderr
