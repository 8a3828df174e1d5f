"""Raw records of a data file, streamed: JSON objects from (gzipped) JSON Lines, rows from Parquet.

Each record comes with its 1-based line (JSON Lines) or row (Parquet). A line that is
not a JSON object comes back as a `FormatError` in its place, so reading goes on; a
file that cannot be read on at all (missing, corrupt gzip, unreadable Parquet) raises.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Generator, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tutelage.formats.containers import container_from_suffix
from tutelage.formats.errors import FormatError

__all__ = ["RawRecord", "open_records"]

RawRecord = tuple[int, dict[str, object] | FormatError]

# Rows decoded from Parquet at a time: small enough to stream, large enough to be quick.
_PARQUET_BATCH_ROWS = 1024


def open_records(path: Path) -> Generator[RawRecord, None, None]:
    """Return the raw records of `path`; raises FormatError now if the file cannot be opened."""
    container = container_from_suffix(path)
    if container is None:
        raise FormatError(
            path,
            None,
            None,
            f"unknown file type {path.suffix!r}; expected .jsonl, .jsonl.gz or .parquet",
        )
    if not path.is_file():
        raise FormatError(path, None, None, "no such file")
    if container == "parquet":
        return _parquet_rows(path, _open_parquet(path))
    if container == "jsonl.gz":
        return _gzip_lines(path)
    return _plain_lines(path)


def _plain_lines(path: Path) -> Generator[RawRecord, None, None]:
    with path.open("rb") as stream:
        yield from _json_lines(path, stream)


def _gzip_lines(path: Path) -> Generator[RawRecord, None, None]:
    with gzip.open(path, "rb") as stream:
        lines = _json_lines(path, stream)
        last_good = 0
        while True:
            try:
                record = next(lines)
            except StopIteration:
                return
            except (EOFError, zlib.error, gzip.BadGzipFile) as error:
                reason = f"truncated or corrupt gzip after line {last_good}"
                raise FormatError(path, last_good + 1, None, reason) from error
            last_good = record[0]
            yield record


def _json_lines(path: Path, stream: Iterable[bytes]) -> Generator[RawRecord, None, None]:
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        yield number, _json_object(path, number, raw)


def _json_object(path: Path, number: int, raw: bytes) -> dict[str, object] | FormatError:
    try:
        # A byte-order mark may open the file; it is not part of the first record.
        text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError:
        return FormatError(path, number, None, "not valid UTF-8")
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
        return FormatError(path, number, None, "malformed JSON")
    if not isinstance(value, dict):
        return FormatError(path, number, None, "not a JSON object")
    return value


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise FormatError(path, None, None, f"unreadable Parquet: {error}") from error


def _parquet_rows(path: Path, parquet: pq.ParquetFile) -> Generator[RawRecord, None, None]:
    number = 0
    batches = parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS)
    try:
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as error:
                reason = f"unreadable Parquet after row {number}: {error}"
                raise FormatError(path, number + 1, None, reason) from error
            for row in batch.to_pylist():
                number += 1
                yield number, row
    finally:
        parquet.close()
