"""Read preference and chat files record by record, detecting the format if not given."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from tutelage.formats.chat import parse_chat
from tutelage.formats.errors import FormatError, RecordError
from tutelage.formats.hh import parse_hh
from tutelage.formats.sources import RawRecord, open_records
from tutelage.formats.trl import parse_trl
from tutelage.records import ChatExample, PreferencePair
from tutelage.storable import find_unstorable

__all__ = ["Item", "detect_format", "read_file"]

Parser = Callable[[dict[str, object]], PreferencePair | ChatExample]

# "trl-text" files are TRL files with plain strings, which the TRL reader takes as well.
_PARSERS: dict[str, Parser] = {
    "trl": parse_trl,
    "trl-text": parse_trl,
    "hh-rlhf": parse_hh,
    "chat": parse_chat,
}
_DETECTABLE = "trl (prompt, chosen, rejected), hh-rlhf (chosen, rejected), chat (messages)"


@dataclass(frozen=True)
class Item:
    """One record of a file, or why the line (or Parquet row) `line` is not one."""

    line: int
    record: PreferencePair | ChatExample | None
    error: FormatError | None

    def __post_init__(self) -> None:
        if (self.record is None) == (self.error is None):
            raise ValueError("an Item holds exactly one of 'record' and 'error'")


def detect_format(path: Path) -> str:
    """Return the format of `path` ("trl", "hh-rlhf" or "chat") from its first record."""
    with closing(open_records(path)) as records:
        for number, record in records:
            if isinstance(record, FormatError):
                reason = f"cannot detect the format: {record.reason}; pass a format"
                raise FormatError(path, number, None, reason)
            fmt = _format_of(record)
            if fmt is None:
                raise FormatError(
                    path,
                    number,
                    None,
                    f"cannot detect the format from the keys {sorted(record)}; "
                    f"known formats: {_DETECTABLE}",
                )
            return fmt
    raise FormatError(path, None, None, "no records")


def _format_of(record: dict[str, object]) -> str | None:
    chosen, rejected = record.get("chosen"), record.get("rejected")
    if "prompt" in record and "chosen" in record and "rejected" in record:
        return "trl"
    if isinstance(chosen, str) and isinstance(rejected, str) and "\n\nHuman:" in chosen:
        return "hh-rlhf"
    if isinstance(chosen, list) and isinstance(rejected, list):
        return "trl"  # conversational with an implicit prompt
    if "messages" in record:
        return "chat"
    return None


def read_file(path: Path, fmt: str | None = None) -> Iterator[Item]:
    """Return the records of `path` one by one, each with its line or Parquet row.

    A record that cannot be parsed comes back as an Item holding a `FormatError`;
    a file that cannot be read on at all raises `FormatError`, now or while iterating.
    """
    if fmt is None:
        fmt = detect_format(path)
    parser = _PARSERS.get(fmt)
    if parser is None:
        known = ", ".join(_PARSERS)
        raise FormatError(path, None, None, f"unknown format {fmt!r}; known formats: {known}")
    return _items(path, open_records(path), parser)


def _items(path: Path, records: Iterator[RawRecord], parser: Parser) -> Iterator[Item]:
    for number, record in records:
        if isinstance(record, FormatError):
            yield Item(line=number, record=None, error=record)
            continue
        unstorable = find_unstorable(record, "")
        if unstorable is not None:
            where, problem = unstorable
            failure = FormatError(path, number, where.lstrip(".") or None, f"holds {problem}")
            yield Item(line=number, record=None, error=failure)
            continue
        try:
            parsed = parser(record)
        except RecordError as error:
            failure = FormatError(path, number, error.field, error.reason)
            yield Item(line=number, record=None, error=failure)
        except ValidationError as error:  # a check the parsers missed; still one bad line
            reason = f"invalid record: {error.errors()[0]['msg']}"
            failure = FormatError(path, number, None, reason)
            yield Item(line=number, record=None, error=failure)
        else:
            yield Item(line=number, record=parsed, error=None)
