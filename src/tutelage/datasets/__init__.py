"""The governance stage: dataset versions, their checks, licence, card and the gate.

Consensus labels become immutable, content-hashed versions (`snapshot`); checks and
overrides are appended to a version's history; `gate.require_checked` is what training
calls before it reads a version.
"""

from __future__ import annotations

from tutelage.datasets.versions import (
    DatasetError,
    DatasetEvent,
    DatasetVersion,
    events,
    list_versions,
    open_version,
    read_records,
    record_event,
    write_version,
)

__all__ = [
    "DatasetError",
    "DatasetEvent",
    "DatasetVersion",
    "events",
    "list_versions",
    "open_version",
    "read_records",
    "record_event",
    "write_version",
]
