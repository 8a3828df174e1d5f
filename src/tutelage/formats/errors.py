"""The error a data file raises or yields when it cannot be read as the format says."""

from __future__ import annotations

from os import PathLike

__all__ = ["FormatError", "RecordError"]


class FormatError(ValueError):
    """A file, or one line of it, that does not hold what its format promises.

    `reason` is short and free of line numbers and values where it can be, so that
    skipped lines can be counted by reason ("malformed JSON", "missing field 'prompt'").
    `field` is where in the record the problem is, e.g. ``prompt[2].role``.
    """

    def __init__(
        self, path: str | PathLike[str], line: int | None, field: str | None, reason: str
    ) -> None:
        super().__init__(str(path), line, field, reason)  # the args, so it pickles
        self.path = str(path)
        self.line = line
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        # "missing field 'prompt'" already names its field; don't say it twice.
        if self.field is None or f"'{self.field}'" in self.reason:
            return f"{where}: {self.reason}"
        return f"{where}: field '{self.field}': {self.reason}"


class RecordError(Exception):
    """A record that cannot be parsed or written, before it is known which file it is in.

    Raised by the per-format parsers and encoders; the reader and the writer turn it
    into a `FormatError` naming the file and the line or record.
    """

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
