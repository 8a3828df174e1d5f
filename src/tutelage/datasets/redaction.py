"""`tutelage redact`: a new version with personal data replaced by placeholders.

The source version is only read: its files, hash and history stay as they were. The
new version's parent is the source, its manifest keeps the source's sections (licence,
consent, filters) and adds ``redaction`` (source, what was replaced, how many records
changed), and a "redaction" event is recorded on it. Each message of a prompt and each
answer is redacted separately with `tutelage.datasets.pii`. Records that become
identical once redacted (two prompts that differed only in an e-mail address) are kept
once, and the count is in the manifest.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from tutelage.datasets.pii import PiiSettings, find_pii, redact_text
from tutelage.datasets.versions import (
    DatasetVersion,
    read_records,
    record_event,
    record_id,
    write_version,
)
from tutelage.store import Store

__all__ = ["redact_version"]

# What write_version sets itself; everything else of the source manifest is kept.
_OWN_KEYS = {
    "name",
    "hash",
    "kind",
    "project",
    "parent",
    "parent_hash",
    "counts",
    "columns",
    "created_at",
    "created_by",
    "tutelage_version",
    "redaction",
}
_ANSWERS = ("chosen", "rejected", "completion")


def redact_version(
    store: Store,
    *,
    version: DatasetVersion,
    name: str,
    actor: str = "",
    settings: PiiSettings | None = None,
) -> DatasetVersion:
    """Write `version` with its personal data replaced as the new version `name`."""
    settings = settings or PiiSettings()
    frame = read_records(version)
    replaced: Counter[str] = Counter()
    cache: dict[str, str] = {}

    def redact(text: str) -> str:
        if text not in cache:
            findings = find_pii(text, settings)
            replaced.update(f.kind for f in findings)
            cache[text] = redact_text(text, findings) if findings else text
        return cache[text]

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    changed = dropped = 0
    for row in frame.drop(columns=["record_id", "prompt_key", "prompt_text"]).to_dict("records"):
        messages = json.loads(str(row["prompt"]))
        new = dict(row)
        new["prompt"] = json.dumps(
            [{**m, "content": redact(str(m["content"]))} for m in messages], ensure_ascii=False
        )
        for column in _ANSWERS:
            if column in new:
                new[column] = redact(str(new[column]))
        changed += new != row
        key = record_id(version.kind, new)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        rows.append(new)

    import pandas as pd

    section = {
        "source": version.name,
        "source_hash": version.hash,
        "replaced": dict(sorted(replaced.items())),
        "records_changed": changed,
        "duplicates_dropped": dropped,
        "kinds": list(settings.kinds),
    }
    extra = {k: v for k, v in version.manifest.items() if k not in _OWN_KEYS}
    redacted = write_version(
        store,
        name=name,
        kind=version.kind,
        project=version.project,
        records=pd.DataFrame(
            rows, columns=list(frame.columns.drop(["record_id", "prompt_key", "prompt_text"]))
        ),
        parent=version,
        manifest_extra={**extra, "redaction": section},
        actor=actor,
    )
    with store.session() as session:
        record_event(
            session, version=redacted, kind="redaction", passed=None, details=section, actor=actor
        )
    return redacted
