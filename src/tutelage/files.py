"""Files written whole or not at all, for every stage that leaves files beside the store:
training runs and checkpoints, quality charts, data cards.

A crash, a full disk or an exception mid-write leaves the previous file (or none), never
a half-written one; readers see the old bytes or the new.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["write_bytes_whole", "write_text_whole", "write_whole"]


def write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` whole or not at all: `write` fills a new file beside it, under a name
    no other writer (thread or process) uses, which is synced, made readable as a plain
    file is (0644, not the 0600 of a temporary file) and renamed over `path`."""
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    partial = Path(name)
    try:
        write(partial)
        with partial.open("rb") as stream:
            os.fsync(stream.fileno())
        partial.chmod(0o644)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_bytes_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (`write_whole`)."""
    write_whole(path, lambda partial: partial.write_bytes(data))


def write_text_whole(path: Path, text: str) -> None:
    """Write `text` to `path` as UTF-8, whole or not at all (`write_whole`)."""
    write_whole(path, lambda partial: partial.write_text(text, "utf-8"))
