"""Files written whole or not at all, for every stage that leaves files beside the store:
training runs and checkpoints, quality charts, data cards, exports, dataset versions.

A crash, a full disk or an exception mid-write leaves the previous file (or none), never
a half-written one; readers see the old bytes or the new. What is written is synced, and
so is its folder after the rename, before it is reported written. Work in progress is
named after the process writing it (`staging_path`), so that what a killed process left
is known as such and removed by the next writer into that folder (`remove_leftovers`),
or by `tutelage db doctor`.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "crash_point",
    "find_leftovers",
    "remove_leftovers",
    "staging_path",
    "sync_folder",
    "sync_tree",
    "write_bytes_whole",
    "write_text_whole",
    "write_whole",
]

_KINDS = ("partial", "tmp", "staging", "old")
# .NAME.PID-HEX.KIND: what `staging_path` makes
_STAGING = re.compile(
    r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.(?P<kind>" + "|".join(_KINDS) + ")$"
)


def staging_path(target: Path, kind: str = "tmp") -> Path:
    """A name beside `target` for work in progress, unique, and naming this process."""
    assert kind in _KINDS
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.{kind}")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def find_leftovers(folder: Path, name: str | None = None) -> list[Path]:
    """What killed processes left in `folder` (of `name` only, if given): staging files
    and folders whose writer is no longer running."""
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        staged = _STAGING.match(entry.name)
        if staged is None or (name is not None and staged["name"] != name):
            continue
        if not _alive(int(staged["pid"])):
            found.append(entry)
    return found


def remove_leftovers(folder: Path, name: str | None = None) -> list[Path]:
    """Remove `find_leftovers(folder, name)`; return what was removed."""
    removed = find_leftovers(folder, name)
    for entry in removed:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return removed


def sync_folder(folder: Path) -> None:
    """Make the names in `folder` (a rename into it) durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def sync_tree(path: Path) -> None:
    """Sync a file, or a folder's files and folders, to disk."""
    if path.is_dir():
        for child in path.rglob("*"):
            if child.is_file():
                with child.open("rb") as stream:
                    os.fsync(stream.fileno())
        for folder in [path, *(p for p in path.rglob("*") if p.is_dir())]:
            sync_folder(folder)
    else:
        with path.open("rb") as stream:
            os.fsync(stream.fileno())


def crash_point(name: str) -> None:
    """Die here, as a `kill -9` would, when ``TUTELAGE_CRASH_AT`` names this point: the
    crash tests use it to stop an export or a snapshot between two of its steps."""
    if os.environ.get("TUTELAGE_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """Write `path` whole or not at all: `write` fills a new file beside it, under a name
    no other writer (thread or process) uses, which is synced, made readable as a plain
    file is (0644, not the 0600 of a temporary file) and renamed over `path`."""
    remove_leftovers(path.parent, path.name)
    partial = staging_path(path, "partial")
    partial.touch(0o600, exist_ok=False)
    try:
        write(partial)
        sync_tree(partial)
        partial.chmod(0o644)
        partial.replace(path)
        sync_folder(path.parent)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def write_bytes_whole(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all (`write_whole`)."""
    write_whole(path, lambda partial: partial.write_bytes(data))


def write_text_whole(path: Path, text: str) -> None:
    """Write `text` to `path` as UTF-8, whole or not at all (`write_whole`)."""
    write_whole(path, lambda partial: partial.write_text(text, "utf-8"))


def file_sha256(path: Path) -> str:
    """Return the sha256 of the file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
