"""The manifest that vouches for a prepared model folder, and the checks behind it.

A prepared folder is only trusted while every file it lists still hashes to the
recorded SHA-256: a half-written or corrupted folder must never be loaded silently.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "MANIFEST_NAME",
    "file_sha256",
    "folder_checksums",
    "manifest_version",
    "read_manifest",
    "safetensors_parameters",
    "verify_folder",
    "write_manifest",
]

MANIFEST_NAME = "tutelage-model.json"

_BUFFER_DTYPES = frozenset({"I64", "I32", "I16", "BOOL"})


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of the file at `path`."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def folder_checksums(folder: Path) -> dict[str, str]:
    """Return {relative path: SHA-256} for every file under `folder` but the manifest."""
    return {
        path.relative_to(folder).as_posix(): file_sha256(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST_NAME
    }


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write `manifest` as the folder's manifest file."""
    text = json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False)
    (folder / MANIFEST_NAME).write_text(text + "\n", encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """Return the folder's manifest, or None when it is missing or unreadable."""
    try:
        value = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(value, dict) or not isinstance(value.get("files"), dict):
        return None
    return value


def verify_folder(folder: Path) -> str | None:
    """Return why the folder cannot be trusted, or None when every listed file verifies."""
    manifest = read_manifest(folder)
    if manifest is None:
        return f"no readable {MANIFEST_NAME} in {folder}"
    for relative, expected in sorted(manifest["files"].items()):
        path = folder / relative
        if not path.is_file():
            return f"{relative} is missing"
        if file_sha256(path) != expected:
            return f"{relative} does not match its recorded checksum"
    return None


def manifest_version(manifest: dict[str, Any]) -> str:
    """Return a short version string derived from the manifest's file checksums.

    Two folders share a version exactly when they hold byte-identical files.
    """
    blob = json.dumps(manifest["files"], sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:12]


def safetensors_parameters(files: Iterable[Path]) -> int:
    """Return the number of weights stored in the given safetensors files.

    Reads only each file's JSON header (the first few kilobytes), so counting a
    half-gigabyte model takes microseconds and needs no tensor library. Integer
    tensors are buffers (e.g. BERT's position_ids), not weights, and are skipped.
    """
    total = 0
    for path in files:
        with path.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
        for key, entry in header.items():
            if key == "__metadata__" or entry["dtype"] in _BUFFER_DTYPES:
                continue
            count = 1
            for size in entry["shape"]:
                count *= int(size)
            total += count
    return total
