"""Quality over the real store: loading, exclusions, adjudications, stored consensus, queue."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from quality_fixtures import item_ids, judge, reviewer
from tutelage.quality.decisions import adjudicate, exclude_expert, include_expert
from tutelage.quality.load import expert_worker, load_judgments
from tutelage.quality.persist import adjudication_queue, analyse_project
from tutelage.records import Project
from tutelage.store import Store, StoreError, open_store
from tutelage.store.projects import create_project, get_project, project_record
from tutelage.store.quality_tables import ConsensusLabelRow
from tutelage.store.workspace_tables import AuditRow, ItemRow
from tutelage.workspace.errors import Conflict, Forbidden, NotFound
from workspace_fixtures import make_world


def test_load_gives_canonical_labels_whatever_order_was_shown(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=3, experts=2, overlap=2)
    items = item_ids(world)
    wanted = dict(zip(items, ["a", "b", "tie"], strict=True))
    straight = judge(world, 0, wanted, swap=False)
    swapped = judge(world, 1, wanted, swap=True)

    with store.session() as session:
        loaded = load_judgments(session, project_id=world.project_id)
    frame = loaded.comparisons.set_index("judgment_id")
    for item, label in wanted.items():
        for done, was_swapped in ((straight, False), (swapped, True)):
            row = frame.loc[done[item][0]]
            assert (row["item"], row["label"], bool(row["swapped"])) == (item, label, was_swapped)
    # The comparison row holds what was shown: answer B won on screen for the swapped "a".
    with store.session() as session:
        shown = session.execute(
            text("SELECT outcome FROM comparisons WHERE id = :id"),
            {"id": swapped[items[0]][0]},
        ).scalar()
    assert shown == "b"
    # The imported pairs count for their items as one more worker, chosen = canonical a.
    imported = loaded.comparisons[loaded.comparisons["worker"] == "source:seed"]
    assert sorted(imported["item"]) == items and set(imported["label"]) == {"a"}
    assert loaded.names[expert_worker(world.experts[0].user_id)] == "expert0"
    assert loaded.method == "dawid_skene" and loaded.adjudication_threshold == 0.7


def test_gold_answers_feed_gold_accuracy_not_consensus(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=4, experts=1, overlap=1, gold_rate=0.9)
    with store.session() as session:
        from tutelage.workspace.items import mark_known_answers

        mark_known_answers(
            session, project_id=world.project_id, purpose="gold", count=2, actor_id=None
        )
    labels = dict.fromkeys(item_ids(world), "b")  # gold winners are canonical "a": all wrong
    judge(world, 0, labels)
    with store.session() as session:
        loaded = load_judgments(session, project_id=world.project_id)
        gold_items = set(session.scalars(select(ItemRow.id).where(ItemRow.purpose == "gold")).all())
    answered, correct = loaded.gold[expert_worker(world.experts[0].user_id)]
    assert answered >= 1 and correct == 0
    assert not gold_items & set(loaded.comparisons["item"])
    assert loaded.left_out["judgments on gold items"] >= answered  # imported ones too


def test_an_excluded_expert_leaves_consensus_and_the_audit_log_says_why(
    store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=4, experts=3, overlap=3)
    items = item_ids(world)
    judge(world, 0, dict.fromkeys(items, "a"))
    judge(world, 1, dict.fromkeys(items, "a"))
    spammer = judge(world, 2, dict.fromkeys(items, "b"))
    spam_ids = {judgment for judgment, _ in spammer.values()}
    expert = world.experts[2]

    def consensus_ids() -> set[int]:
        quality = analyse_project(store, project="cardio", bootstrap=0)
        return {i for label in quality.analysis.consensus for i in label.judgment_ids}

    assert spam_ids <= consensus_ids()
    with store.session() as session:
        exclude_expert(
            session,
            actor=world.admin,
            project_id=world.project_id,
            user_id=expert.user_id,
            reason="answers B whatever is shown",
        )
    assert not spam_ids & consensus_ids()
    with store.session() as session:
        stored = session.scalars(select(ConsensusLabelRow.judgment_ids)).all()
        assert stored and not spam_ids & {i for ids in stored for i in ids}
        with pytest.raises(Conflict, match="excluded from project 'cardio' already"):
            exclude_expert(
                session,
                actor=world.admin,
                project_id=world.project_id,
                user_id=expert.user_id,
                reason="again",
            )
    with store.session() as session:
        include_expert(
            session, actor=world.admin, project_id=world.project_id, user_id=expert.user_id
        )
    assert spam_ids <= consensus_ids()
    with store.session() as session:
        entries = session.execute(
            select(AuditRow.action, AuditRow.target, AuditRow.details)
            .where(AuditRow.action.like("quality.%"))
            .order_by(AuditRow.id)
        ).all()
        assert [(a, t) for a, t, _ in entries] == [
            ("quality.exclude", "expert2"),
            ("quality.include", "expert2"),
        ]
        assert entries[0][2]["reason"] == "answers B whatever is shown"
        with pytest.raises(Conflict, match="is not excluded"):
            include_expert(session, actor=None, project_id=world.project_id, user_id=expert.user_id)


def test_exclusion_needs_an_admin_a_reason_and_a_member(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=1, experts=2)
    target = world.experts[1].user_id
    with store.session() as session:
        with pytest.raises(Forbidden):
            exclude_expert(
                session, actor=world.experts[0], project_id=world.project_id, user_id=target,
                reason="x",
            )  # fmt: skip
        with pytest.raises(Exception, match="reason is required"):
            exclude_expert(
                session, actor=world.admin, project_id=world.project_id, user_id=target, reason=" "
            )
        with pytest.raises(NotFound, match="not a member"):
            exclude_expert(
                session, actor=None, project_id=world.project_id, user_id=world.admin.user_id,
                reason="not one of ours",
            )  # fmt: skip


def test_an_adjudication_overrides_consensus_and_is_final(store: Store, tmp_path: Path) -> None:
    world = make_world(store, tmp_path, pairs=2, experts=2, overlap=2)
    items = item_ids(world)
    judge(world, 0, dict.fromkeys(items, "a"))
    judge(world, 1, dict.fromkeys(items, "a"))
    analyse_project(store, project="cardio", bootstrap=0)
    decider = reviewer(world)
    with store.session() as session:
        adjudicate(
            session,
            actor=decider,
            project_id=world.project_id,
            item_id=items[0],
            label="both_bad",
            note="both answers miss the contraindication",
        )
        # The stored consensus label changes at once, before any recomputation.
        stored = session.scalar(
            select(ConsensusLabelRow).where(ConsensusLabelRow.item_id == items[0])
        )
        assert stored is not None and (stored.label, stored.method) == ("both_bad", "adjudication")
    with store.session() as session, pytest.raises(Conflict, match="adjudicated already"):
        adjudicate(session, actor=decider, project_id=world.project_id, item_id=items[0], label="a")
    with store.session() as session, pytest.raises(Forbidden):
        adjudicate(
            session,
            actor=world.experts[0],
            project_id=world.project_id,
            item_id=items[1],
            label="a",
        )
    with store.session() as session, pytest.raises(Exception, match="label must be one of"):
        adjudicate(session, actor=decider, project_id=world.project_id, item_id=items[1], label="c")

    quality = analyse_project(store, project="cardio", bootstrap=0)
    final = {label.item: label for label in quality.analysis.consensus}
    assert (final[items[0]].label, final[items[0]].method) == ("both_bad", "adjudication")
    assert final[items[1]].label == "a" and final[items[1]].method == "dawid_skene"
    with store.session() as session:
        rows = {
            row.item_id: (row.label, row.method)
            for row in session.scalars(select(ConsensusLabelRow))
        }
        assert rows[items[0]] == ("both_bad", "adjudication")
        details = session.scalar(
            select(AuditRow.details).where(AuditRow.action == "quality.adjudicate")
        )
        assert details is not None
        assert (details["label"], details["note"]) == (
            "both_bad",
            "both answers miss the contraindication",
        )


def test_the_queue_shows_unsure_items_with_rationales_but_no_identities(
    store: Store, tmp_path: Path
) -> None:
    # Every item short of certainty goes to the queue.
    world = make_world(store, tmp_path, pairs=3, experts=2, overlap=2, adjudication_threshold=1.0)
    items = item_ids(world)
    judge(world, 0, dict.fromkeys(items, "a"), rationale="A cites the guideline")
    judge(world, 1, {items[0]: "b", items[1]: "a", items[2]: "a"}, rationale="B is shorter")
    analyse_project(store, project="cardio", bootstrap=0)
    with store.session() as session:
        threshold = get_project(session, name="cardio").adjudication_threshold
        confidence = {
            row.item_id: row.confidence for row in session.scalars(select(ConsensusLabelRow))
        }
        queue = adjudication_queue(session, project_id=world.project_id)
    unsure = sorted(item for item, value in confidence.items() if value < threshold)
    assert sorted(entry.item_id for entry in queue) == unsure
    assert items[0] in unsure  # the two experts disagree on it
    entry = next(e for e in queue if e.item_id == items[0])
    assert sorted((j.label, j.rationale, j.imported) for j in entry.judgments) == [
        ("a", "", True),
        ("a", "A cites the guideline", False),
        ("b", "B is shorter", False),
    ]
    assert entry.answer_a.startswith("Good answer") and entry.prompt[0]["content"]
    shown = repr(queue)
    for person in world.experts:
        assert person.handle not in shown and f"{person.handle}@example.org" not in shown
        assert f"expert:{person.user_id}" not in shown

    decider = reviewer(world)
    with store.session() as session:
        adjudicate(session, actor=decider, project_id=world.project_id, item_id=items[0], label="a")
    with store.session() as session:
        assert items[0] not in {
            e.item_id for e in adjudication_queue(session, project_id=world.project_id)
        }


def test_projects_keep_their_consensus_settings(store: Store) -> None:
    project = Project(name="p", consensus_method="majority", adjudication_threshold=0.55)
    with store.session() as session:
        create_project(session, project=project)
    with store.session() as session:
        assert project_record(get_project(session, name="p")) == project
    with pytest.raises(ValueError, match="consensus_method"):
        Project(name="q", consensus_method="vibes")  # type: ignore[arg-type]


def test_upgrading_from_the_workspace_schema_adds_the_quality_settings(tmp_path: Path) -> None:
    from tutelage.store.engine import create_store_engine
    from tutelage.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(url)
    upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO projects (name, domain, instructions, rubric, pay_rate_per_hour,"
                " currency, nda_text, licence, consent, created_at) VALUES ('old', 'law', '',"
                " '[]', 100, 'USD', 'nda', 'x', '', '2026-01-01')"
            )
        )
    with pytest.raises(StoreError, match="tutelage db upgrade"):
        open_store(url)
    upgrade(engine)
    engine.dispose()
    store = open_store(url)
    with store.session() as session:
        record = project_record(get_project(session, name="old"))
    assert (record.consensus_method, record.adjudication_threshold) == ("dawid_skene", 0.7)
    store.close()
