"""The data sets a reward model is audited on, with the groups each pair belongs to.

A file (any format `tutelage import` reads) is named by its sha256 and grouped by the
strength people gave, where it has one. A dataset version is named by its hash and
grouped by the way its label was reached (an expert consensus method, or imported) and
by the expertise of the experts whose judgments it rests on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from tutelage.evaluation.errors import EvaluationError
from tutelage.files import file_sha256
from tutelage.training.data import TrainingPair, load_pairs

__all__ = ["PairSet", "load_pair_sets"]


@dataclass(frozen=True)
class PairSet:
    """Pairs to audit on, named by where they came from; `groups` maps a grouping (e.g.
    "expertise") to each pair's values in it (a pair may have several, or none)."""

    source: str
    pairs: Sequence[TrainingPair]
    groups: dict[str, list[list[str]]] = field(default_factory=dict)
    hash: str | None = None


def _version_groups(
    ref: str, db: str | None, split: str | None, count: int
) -> dict[str, list[list[str]]]:
    from tutelage.datasets.versions import open_version, read_records
    from tutelage.store import open_store
    from tutelage.store.tables import ComparisonRow, UserRow

    store = open_store(db)
    try:
        with store.read_session() as session:
            version = open_version(session, ref=ref)
            records = read_records(version)
            if split is not None:
                records = records[records["split"] == split]
            judgments = [json.loads(str(ids)) for ids in records["judgment_ids"]]
            wanted = sorted({int(j) for ids in judgments for j in ids})
            expertise: dict[int, list[str]] = {}
            for start in range(0, len(wanted), 5_000):
                rows = session.execute(
                    select(ComparisonRow.id, UserRow.expertise)
                    .join(UserRow, UserRow.id == ComparisonRow.expert_id)
                    .where(ComparisonRow.id.in_(wanted[start : start + 5_000]))
                ).all()
                expertise.update({int(i): [str(t) for t in (tags or [])] for i, tags in rows})
    finally:
        store.close()
    if len(records) != count:
        raise ValueError(f"dataset version {ref!r} changed while it was read")
    methods = [[str(m)] for m in records["method"]]
    tags = [
        sorted({t for j in ids for t in expertise.get(int(j), [])}) or ["(no expert)"]
        for ids in judgments
    ]
    return {"label": methods, "expertise": tags}


def load_pair_sets(
    refs: Sequence[str],
    *,
    db: str | None = None,
    split: str | None = "test",
    override: str | None = None,
    actor: str = "evaluation",
) -> list[PairSet]:
    """Return the pairs of each of `refs`: a file, else a dataset version name or hash.

    Raises EvaluationError naming the data set that holds no pairs.
    """
    found = []
    for ref in refs:
        loaded = load_pairs(ref, db=db, split=split, override=override, actor=actor)
        where = (
            f"split {split!r} of dataset version {loaded.source}"
            if loaded.version_name
            else loaded.source
        )
        if not loaded.pairs:
            raise EvaluationError(f"no preference pairs in {where}")
        if loaded.version_name:
            groups = _version_groups(ref, db, split, len(loaded.pairs))
            found.append(PairSet(where, loaded.pairs, groups, loaded.version_hash))
            continue
        groups = {}
        if any(p.strength for p in loaded.pairs):
            groups["strength"] = [[p.strength] if p.strength else [] for p in loaded.pairs]
        found.append(PairSet(loaded.source, loaded.pairs, groups, file_sha256(Path(ref))))
    return found
