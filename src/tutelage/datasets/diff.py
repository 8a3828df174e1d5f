"""What changed between two versions: records added, removed and changed.

Records are matched in stages, each stage only where the match is one to one among
the records still unmatched:

1. the same `record_id` (same content): *changed* only if its split or label differs;
2. (preference) the same prompt and the same two answers, in either order: *changed*
   when the chosen answer flipped; (ratings) the same prompt and completion: *changed*
   scores;
3. the same prompt (`prompt_key`), when each version has exactly one unmatched record
   of it: *changed* text (an edit or a redaction).

Whatever is left is *added* (only in B) or *removed* (only in A).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tutelage.datasets.versions import DatasetError, DatasetVersion, read_records

__all__ = ["VersionDiff", "diff_versions"]

_COMPARED = ["split", "label", "prompt", "chosen", "rejected", "completion", "scores"]


@dataclass(frozen=True)
class VersionDiff:
    """Record ids only in `b` (added), only in `a` (removed), and the changed pairs."""

    a: str
    b: str
    added: list[str]
    removed: list[str]
    changed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "added": self.added,
            "removed": self.removed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "counts": {
                "added": len(self.added),
                "removed": len(self.removed),
                "changed": len(self.changed),
                "unchanged": self.unchanged,
            },
        }


def _keys(kind: str, row: dict[str, Any]) -> list[tuple[str, ...]]:
    stages: list[tuple[str, ...]] = [("id", row["record_id"])]
    if kind == "preference":
        stages.append(("pair", row["prompt_key"], *sorted([row["chosen"], row["rejected"]])))
    elif kind == "ratings":
        stages.append(("pair", row["prompt_key"], row["completion"]))
    stages.append(("prompt", row["prompt_key"]))
    return stages


def diff_records(
    kind: str, a: pd.DataFrame, b: pd.DataFrame, *, names: tuple[str, str]
) -> VersionDiff:
    """Compare two frames of records of the same kind (see the module's stages)."""
    left = {r["record_id"]: r for r in a.to_dict("records")}
    right = {r["record_id"]: r for r in b.to_dict("records")}
    changed: list[dict[str, Any]] = []
    unchanged = 0
    for stage in range(3):
        index_a: dict[tuple[str, ...], list[str]] = {}
        index_b: dict[tuple[str, ...], list[str]] = {}
        for rows, index in ((left, index_a), (right, index_b)):
            for rid, row in rows.items():
                keys = _keys(kind, row)
                if stage < len(keys):
                    index.setdefault(keys[stage], []).append(rid)
        for key, ids_a in index_a.items():
            ids_b = index_b.get(key, [])
            if len(ids_a) != 1 or len(ids_b) != 1:
                continue
            row_a, row_b = left.pop(ids_a[0]), right.pop(ids_b[0])
            fields = [c for c in _COMPARED if c in row_a and str(row_a[c]) != str(row_b[c])]
            if fields:
                changed.append(
                    {
                        "record_id_a": row_a["record_id"],
                        "record_id_b": row_b["record_id"],
                        "prompt_key": row_b["prompt_key"],
                        "fields": fields,
                    }
                )
            else:
                unchanged += 1
    return VersionDiff(
        a=names[0],
        b=names[1],
        added=sorted(right),
        removed=sorted(left),
        changed=sorted(changed, key=lambda c: (c["prompt_key"], c["record_id_b"])),
        unchanged=unchanged,
    )


def diff_versions(a: DatasetVersion, b: DatasetVersion) -> VersionDiff:
    """Compare version `a` with version `b` (what `b` added, removed and changed)."""
    if a.kind != b.kind:
        raise DatasetError(
            f"cannot compare {a.name!r} ({a.kind}) with {b.name!r} ({b.kind}): kinds differ"
        )
    return diff_records(a.kind, read_records(a), read_records(b), names=(a.name, b.name))
