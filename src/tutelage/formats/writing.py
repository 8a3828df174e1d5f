"""Write preference pairs and chat examples to a file in one of the formats, atomically."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from tutelage.formats import chat, hh, trl
from tutelage.formats.containers import Container, container_for
from tutelage.formats.errors import FormatError, RecordError
from tutelage.formats.sinks import Row, write_rows
from tutelage.records import ChatExample, PreferencePair

__all__ = ["Container", "container_for", "write_file"]

Encoder = Callable[[PreferencePair | ChatExample], Row]

_ENCODERS: dict[str, tuple[Encoder, pa.Schema]] = {
    "trl": (trl.encode_conversational, trl.CONVERSATIONAL_SCHEMA),
    "trl-text": (trl.encode_text, trl.TEXT_SCHEMA),
    "hh-rlhf": (hh.encode_hh, hh.SCHEMA),
    "chat": (chat.encode_chat, chat.SCHEMA),
}


def write_file(
    path: Path,
    fmt: str,
    records: Iterable[PreferencePair | ChatExample],
    container: Container | None = None,
) -> int:
    """Write `records` to `path` as `fmt` and return how many were written.

    The container comes from `container`, else from the suffix (see `container_for`).
    A record the format cannot hold (a system message in HH-RLHF, a multi-turn prompt
    in trl-text, a chat example in a preference format) raises `FormatError` naming
    the record, and nothing is written. `strength` is not part of these formats and is
    not written.
    """
    if fmt not in _ENCODERS:
        known = ", ".join(_ENCODERS)
        raise FormatError(path, None, None, f"unknown format {fmt!r}; known formats: {known}")
    encode, schema = _ENCODERS[fmt]
    chosen = container_for(path, container)
    return write_rows(path, chosen, _encoded(path, fmt, records, encode), schema)


def _encoded(
    path: Path, fmt: str, records: Iterable[PreferencePair | ChatExample], encode: Encoder
) -> Iterator[Row]:
    for number, record in enumerate(records, start=1):
        try:
            yield encode(record)
        except RecordError as error:
            raise FormatError(path, None, None, f"record {number}: {error.reason}") from error
