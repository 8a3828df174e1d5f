"""Dataset versions: content hashes, splits, round trips, immutability, licence and the gate."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from quality_fixtures import item_ids, judge
from tutelage.datasets import (
    DatasetError,
    events,
    open_version,
    read_records,
    record_event,
    write_version,
)
from tutelage.datasets.diff import diff_versions
from tutelage.datasets.gate import require_checked
from tutelage.datasets.licence import commercial_use, licence_check
from tutelage.datasets.snapshot import SnapshotSettings, snapshot
from tutelage.datasets.splits import assign_splits
from tutelage.datasets.versions import record_id, version_hash
from tutelage.formats import write_file
from tutelage.formats.trl import parse_trl
from tutelage.interchange import import_file
from tutelage.quality.persist import analyse_project
from tutelage.records import Project, TaskKind
from tutelage.store import Store
from tutelage.store.projects import create_project, get_project
from tutelage.workspace.items import build_items
from workspace_fixtures import make_world

_names = itertools.count()
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ", min_size=1, max_size=20).map(
    lambda s: s.strip() or "x"
)


def _judged_world(store: Store, folder: Path, *, pairs: int = 6) -> dict[int, str]:
    """A project 'cardio' whose experts judged every item; its consensus is stored."""
    world = make_world(store, folder, pairs=pairs, experts=3)
    items = item_ids(world)
    canonical = {item: ("tie" if n == 0 else "a" if n % 2 else "b") for n, item in enumerate(items)}
    for expert in range(3):
        judge(world, expert, canonical)
    analyse_project(store, project="cardio", bootstrap=0)
    return canonical


def _import_pairs(store: Store, path: Path, project: str, **options: str) -> None:
    import_file(store, path=path, project=project, source=f"src-{project}", **options)  # type: ignore[arg-type]
    with store.session() as session:
        project_id = get_project(session, name=project).id
        build_items(session, project_id=project_id, kinds=(TaskKind.COMPARISON,), actor_id=None)
    analyse_project(store, project=project, bootstrap=0)


def test_snapshot_writes_preference_records_and_a_manifest(store: Store, tmp_path: Path) -> None:
    canonical = _judged_world(store, tmp_path)
    version = snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    records = read_records(version)
    assert len(records) == 5  # six items, one tie left out
    assert version.manifest["counts"]["left_out"] == {"tie": 1}
    assert set(records["split"]) <= {"train", "validation", "test"}
    for row in records.to_dict("records"):
        number = row["prompt_text"].removeprefix("user: Question ").removesuffix("?")
        assert row["chosen"] == f"Good answer {number}." or row["label"] == "b"
        assert row["record_id"] == record_id("preference", row)
    assert sum(label in ("a", "b") for label in canonical.values()) == len(records)
    manifest = json.loads((version.path / "manifest.json").read_text())
    assert manifest["hash"] == version.hash and manifest["name"] == "v1"
    assert manifest["judges"]["experts"] == 3
    assert all(e.startswith("expert:") for e in manifest["judges"]["expert_ids"])
    assert manifest["consensus"] == {"method": "dawid_skene", "labels": "stored"}


def test_same_content_gets_the_same_hash_and_a_name_is_never_reused(
    store: Store, tmp_path: Path
) -> None:
    _judged_world(store, tmp_path)
    first = snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    again = snapshot(store, project="cardio", name="v2", settings=SnapshotSettings(), actor="t")
    assert again.hash == first.hash and again.parent == "v1"
    with pytest.raises(DatasetError, match="exists already"):
        snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    other_seed = snapshot(
        store, project="cardio", name="v3", settings=SnapshotSettings(seed=7), actor="t"
    )
    assert set(read_records(other_seed)["record_id"]) == set(read_records(first)["record_id"])
    # No temporary folders are left behind.
    assert sorted(p.name for p in first.path.parent.iterdir()) == ["v1", "v2", "v3"]


def test_min_confidence_and_an_asked_method_are_applied(store: Store, tmp_path: Path) -> None:
    _judged_world(store, tmp_path)
    version = snapshot(
        store,
        project="cardio",
        name="maj",
        settings=SnapshotSettings(consensus="majority", min_confidence=0.99),
        actor="t",
    )
    assert version.manifest["consensus"] == {"method": "majority", "labels": "computed at snapshot"}
    assert (read_records(version)["confidence"] >= 0.99).all()


@settings(max_examples=25, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8)),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    seed=st.integers(0, 10),
)
def test_the_hash_does_not_depend_on_row_order(rows: list[tuple[str, str]], seed: int) -> None:
    frame = pd.DataFrame(
        [
            {
                "prompt": json.dumps([{"role": "user", "content": p}]),
                "completion": c,
                "split": "train",
            }
            for p, c in rows
        ]
    )
    ids = [(record_id("sft", r), r["split"]) for r in frame.to_dict("records")]
    shuffled = frame.sample(frac=1, random_state=seed)
    ids_shuffled = [(record_id("sft", r), r["split"]) for r in shuffled.to_dict("records")]
    assert version_hash("sft", ids) == version_hash("sft", ids_shuffled)
    assert version_hash("sft", ids) != version_hash("preference", ids)


@settings(max_examples=40, deadline=None)
@given(
    keys=st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=40),
    seed=st.integers(0, 1000),
    train=st.floats(0, 1),
)
def test_a_split_never_puts_one_prompt_on_both_sides(
    keys: list[str], seed: int, train: float
) -> None:
    fractions = (train, (1 - train) / 2, 1 - train - (1 - train) / 2)
    records = pd.DataFrame({"prompt_key": keys + keys[::-1]})  # each prompt twice or more
    splits = assign_splits(records["prompt_key"], fractions=fractions, seed=seed)
    records["split"] = [splits[k] for k in records["prompt_key"]]
    assert (records.groupby("prompt_key")["split"].nunique() == 1).all()
    # Deterministic, and a prompt keeps its split when others join.
    assert assign_splits(keys, fractions=fractions, seed=seed) == splits
    more = assign_splits([*keys, "another prompt"], fractions=fractions, seed=seed)
    assert all(more[k] == splits[k] for k in keys)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    pairs=st.lists(
        st.tuples(WORDS, WORDS, WORDS).filter(lambda t: t[1] != t[2]),
        min_size=1,
        max_size=6,
        unique_by=lambda t: t[0],
    )
)
def test_snapshot_export_import_snapshot_keeps_the_hash(
    store: Store, tmp_path: Path, pairs: list[tuple[str, str, str]]
) -> None:
    n = next(_names)
    source = tmp_path / f"pairs{n}.jsonl"
    source.write_text(
        "".join(json.dumps({"prompt": p, "chosen": c, "rejected": r}) + "\n" for p, c, r in pairs)
    )
    _import_pairs(store, source, f"first{n}")
    first = snapshot(
        store, project=f"first{n}", name=f"first{n}", settings=SnapshotSettings(), actor="t"
    )
    exported = tmp_path / f"export{n}.jsonl"
    records = read_records(first)
    pairs_out = [
        parse_trl(
            {"prompt": json.loads(r["prompt"]), "chosen": r["chosen"], "rejected": r["rejected"]}
        )
        for r in records.to_dict("records")
    ]
    write_file(exported, "trl", pairs_out)
    _import_pairs(store, exported, f"second{n}")
    second = snapshot(
        store, project=f"second{n}", name=f"second{n}", settings=SnapshotSettings(), actor="t"
    )
    assert second.hash == first.hash
    assert diff_versions(first, second).to_json()["counts"]["unchanged"] == len(records)


def test_diff_reports_added_removed_and_changed(store: Store, tmp_path: Path) -> None:
    _judged_world(store, tmp_path)
    first = snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    records = read_records(first)
    changed = records.copy()
    changed.loc[0, ["chosen", "rejected"]] = [records.loc[0, "rejected"], records.loc[0, "chosen"]]
    changed.loc[1, "chosen"] = "An edited answer."
    changed = changed.drop(index=2)
    extra = changed.iloc[[0]].copy()
    extra["prompt"] = json.dumps([{"role": "user", "content": "A new question?"}])
    second = write_version(
        store,
        name="v2",
        kind="preference",
        project="cardio",
        records=pd.concat([changed, extra]),
        parent=first,
        manifest_extra={},
        actor="t",
    )
    diff = diff_versions(first, second).to_json()
    assert diff["counts"] == {"added": 1, "removed": 1, "changed": 2, "unchanged": 2}
    assert sorted(tuple(c["fields"]) for c in diff["changed"]) == [
        ("chosen",),
        ("chosen", "rejected"),
    ]


def test_the_gate_refuses_unchecked_and_failed_versions_and_records_overrides(
    store: Store, tmp_path: Path
) -> None:
    _judged_world(store, tmp_path)
    version = snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    with store.session() as session:
        with pytest.raises(DatasetError, match=r"has not been checked.*--override \"reason\""):
            require_checked(session, version=version, override=None, actor="t")
        record_event(
            session,
            version=version,
            kind="check",
            passed=False,
            details={"summary": "2 PII findings", "pii": {"passed": False}},
            actor="checker",
        )
    with store.session() as session:
        with pytest.raises(
            DatasetError, match=r"failed its latest check.*2 PII findings.*--override"
        ):
            require_checked(session, version=version, override=None, actor="t")
        require_checked(session, version=version, override="names are synthetic", actor="lead")
    with store.session() as session:
        history = events(session, version=open_version(session, ref=version.hash[:10]))
        assert [e.kind for e in history] == ["check", "override"]
        assert history[-1].details["reason"] == "names are synthetic"
        assert history[-1].actor == "lead"
        record_event(session, version=version, kind="check", passed=True, details={}, actor="c")
    with store.session() as session:
        require_checked(session, version=version, override=None, actor="t")


def test_history_is_append_only(store: Store, tmp_path: Path) -> None:
    _judged_world(store, tmp_path)
    version = snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    with store.session() as session:
        record_event(session, version=version, kind="note", passed=None, details={}, actor="t")
    for statement in ("UPDATE dataset_events SET actor = 'forged'", "DELETE FROM dataset_events"):
        with pytest.raises(Exception, match="append-only"), store.session() as session:
            session.execute(text(statement))


def test_licence_is_derived_from_the_sources_and_checked(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "nc.jsonl"
    source.write_text(
        "".join(
            json.dumps({"prompt": f"Q{i}?", "chosen": f"good {i}", "rejected": f"bad {i}"}) + "\n"
            for i in range(4)
        )
    )
    _import_pairs(store, source, "nc", licence="CC-BY-NC-4.0", consent="annotators agreed")
    version = snapshot(
        store, project="nc", name="nc1", settings=SnapshotSettings(commercial=True), actor="t"
    )
    licence = version.manifest["licence"]
    assert "CC-BY-NC-4.0" in licence["licences"]
    assert licence["commercial_use"] == "not allowed"
    check = licence_check(version)
    assert not check.passed
    assert "does not allow commercial use" in check.problems[0]
    assert commercial_use("cc-by-4.0") is True and commercial_use("research only") is False


def test_bad_input_is_refused_clearly(store: Store, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="sum to 1"):
        SnapshotSettings(split=(0.5, 0.5, 0.5))
    with pytest.raises(DatasetError, match="unknown consensus method"):
        SnapshotSettings(consensus="vote")
    make_world(store, tmp_path)
    # Never analysed: the labels are computed for the snapshot (the imported pairs' own).
    first = snapshot(store, project="cardio", name="v1", settings=SnapshotSettings(), actor="t")
    assert first.manifest["consensus"]["labels"] == "computed at snapshot"
    assert first.manifest["counts"]["records"] == 6
    with store.session() as session:
        create_project(session, project=Project(name="judged-nothing"))
    with pytest.raises(DatasetError, match=r"no preference records to snapshot$"):
        snapshot(store, project="judged-nothing", name="v2", settings=SnapshotSettings(), actor="t")
    with store.session() as session, pytest.raises(DatasetError, match="no dataset version"):
        open_version(session, ref="missing")
    with pytest.raises(DatasetError, match="invalid version name"):
        write_version(
            store,
            name="../x",
            kind="sft",
            project="cardio",
            records=pd.DataFrame(),
            parent=None,
            manifest_extra={},
            actor="t",
        )
