"""Write encoded records into a container, all or nothing.

Everything is written next to the target under a temporary name and moved into place
with `os.replace` at the end, so a failure halfway (a record that cannot be written,
a full disk, an interrupt) leaves no half-written file and an older file untouched. The
file is synced, and its folder after the rename, before the count is returned; what a
killed export left is removed by the next export of that file (`files.remove_leftovers`).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tutelage.files import crash_point, remove_leftovers, staging_path, sync_folder, sync_tree
from tutelage.formats.containers import Container

__all__ = ["write_rows"]

Row = dict[str, object]

# Rows per Parquet row group / Arrow batch: bounded memory (a few MB of text), yet
# groups large enough to compress well.
_BATCH_ROWS = 4096


def write_rows(path: Path, container: Container, rows: Iterable[Row], schema: pa.Schema) -> int:
    """Write `rows` to `path` as `container`, replacing what was there; return the count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path.parent, path.name)  # what a killed export of this file left
    staging = staging_path(path, "tmp")
    try:
        if container == "hf":
            count = _write_dataset(staging, rows, schema)
            sync_tree(staging / "dataset")
            crash_point("export:written")
            _replace_folder(staging / "dataset", path)
            sync_folder(path.parent)
            shutil.rmtree(staging)
            return count
        if container == "parquet":
            count = _write_parquet(staging, rows, schema)
        else:
            with staging.open("xb") as raw:
                if container == "jsonl.gz":
                    # No file name and a zero time in the header: same records, same bytes.
                    with gzip.GzipFile(
                        filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0
                    ) as stream:
                        count = _write_jsonl(stream.write, rows)
                else:
                    count = _write_jsonl(raw.write, rows)
        sync_tree(staging)
        crash_point("export:written")
        os.replace(staging, path)
        sync_folder(path.parent)
        crash_point("export:renamed")
        return count
    except BaseException:
        _remove(staging)
        raise


def _write_jsonl(write: Callable[[bytes], object], rows: Iterable[Row]) -> int:
    count = 0
    for row in rows:
        write(_json_line(row))
        count += 1
    return count


def _json_line(row: Row) -> bytes:
    try:
        return json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; JSON's \\u escapes can still carry it.
        return json.dumps(row).encode("ascii") + b"\n"


def _batches(rows: Iterable[Row], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    iterator = iter(rows)
    while batch := list(islice(iterator, _BATCH_ROWS)):
        yield pa.RecordBatch.from_pylist(batch, schema=schema)


def _write_parquet(target: Path, rows: Iterable[Row], schema: pa.Schema) -> int:
    count = 0
    with pq.ParquetWriter(str(target), schema) as writer:
        for batch in _batches(rows, schema):
            writer.write_batch(batch)
            count += batch.num_rows
    return count


def _write_dataset(staging: Path, rows: Iterable[Row], schema: pa.Schema) -> int:
    """Write a ``datasets`` folder at ``staging / "dataset"`` by way of an Arrow stream."""
    from datasets import Dataset  # imported here: it is slow to import and only needed here

    staging.mkdir()
    stream_path = staging / "rows.arrow"
    count = 0
    with pa.OSFile(str(stream_path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in _batches(rows, schema):
            writer.write_batch(batch)
            count += batch.num_rows
    # from_file memory-maps the stream, so the rows are not all held in memory at once.
    Dataset.from_file(str(stream_path)).save_to_disk(str(staging / "dataset"))
    return count


def _replace_folder(source: Path, target: Path) -> None:
    """Move folder `source` to `target`, replacing a file or folder already there."""
    if not target.exists() and not target.is_symlink():
        os.replace(source, target)
        return
    old = staging_path(target, "old")
    os.replace(target, old)
    os.replace(source, target)
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
