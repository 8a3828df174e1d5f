"""Which container a path names: JSON Lines, gzipped JSON Lines, Parquet or a datasets folder."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from tutelage.formats.errors import FormatError

__all__ = ["CONTAINERS", "Container", "container_for"]

Container = Literal["jsonl", "jsonl.gz", "parquet", "hf"]
CONTAINERS: tuple[Container, ...] = get_args(Container)

_BY_SUFFIX: dict[str, Container] = {
    ".jsonl": "jsonl",
    ".json": "jsonl",
    ".jsonl.gz": "jsonl.gz",
    ".json.gz": "jsonl.gz",
    ".gz": "jsonl.gz",
    ".parquet": "parquet",
}


def container_from_suffix(path: Path) -> Container | None:
    """Return the container a file name's suffix names, or None for an unknown suffix."""
    name = path.name.lower()
    # Longest suffix first, so "x.jsonl.gz" is not taken for a bare ".gz".
    for suffix in sorted(_BY_SUFFIX, key=len, reverse=True):
        if name.endswith(suffix) and len(name) > len(suffix):
            return _BY_SUFFIX[suffix]
    return None


def container_for(path: Path, container: str | None = None) -> Container:
    """Return the container to write `path` as: `container` if given, else from the suffix.

    A path with no suffix is a Hugging Face ``datasets`` folder (``save_to_disk``).
    """
    if container is not None:
        for known in CONTAINERS:
            if container == known:
                return known
        known_ones = ", ".join(CONTAINERS)
        raise FormatError(
            path, None, None, f"unknown container {container!r}; known containers: {known_ones}"
        )
    found = container_from_suffix(path)
    if found is not None:
        return found
    if path.suffix == "":
        return "hf"
    raise FormatError(
        path,
        None,
        None,
        f"cannot tell the container from the suffix {path.suffix!r}; name the file "
        f".jsonl, .jsonl.gz or .parquet, or pass a container ({', '.join(CONTAINERS)})",
    )
