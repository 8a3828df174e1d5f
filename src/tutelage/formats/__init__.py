"""Preference and chat data files in the formats the ecosystem already uses.

Reading is streamed, one record at a time, so a file larger than memory can be read.
Each record comes back with the 1-based line (JSONL) or row (Parquet) it came from.
A record that cannot be parsed comes back as a `FormatError` in the stream, so the
caller decides whether to stop (the default import) or to skip it (`--skip-invalid`);
a file that cannot be read on at all (unknown format, truncated gzip, unreadable
Parquet) raises `FormatError` instead.

Formats (names used by `--format`):

- ``trl``: TRL preference data, ``prompt``/``chosen``/``rejected``; on reading, plain
  strings or conversational message lists; on writing, message lists.
- ``trl-text``: TRL preference data as plain strings (single-turn prompts only).
- ``hh-rlhf``: Anthropic HH-RLHF transcripts, ``chosen``/``rejected`` sharing the dialogue.
- ``chat``: ``{"messages": [...]}`` per line: a prompt, or a prompt and its answer when
  the last message is the assistant's.

Containers: ``.jsonl``, ``.jsonl.gz`` (also ``.json``/``.json.gz``), ``.parquet``, and for
writing also a Hugging Face ``datasets`` folder (``save_to_disk``).
"""

from tutelage.formats.errors import FormatError
from tutelage.formats.reading import Item, detect_format, read_file
from tutelage.formats.writing import Container, container_for, write_file

FORMATS: tuple[str, ...] = ("trl", "trl-text", "hh-rlhf", "chat")

__all__ = [
    "FORMATS",
    "Container",
    "FormatError",
    "Item",
    "container_for",
    "detect_format",
    "read_file",
    "write_file",
]
