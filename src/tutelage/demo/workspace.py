"""The demo workspace: an admin, a reviewer, an expert, and the demo project set up for
every task kind, with five simulated experts' comparisons so that its quality pages
have something to show.

Used by `make demo` (then served) and by the browser tests, so what a new user sees
first is what the tests check.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from tutelage.demo import DEMO_PROJECT
from tutelage.records import TaskKind
from tutelage.store import Store
from tutelage.store.projects import apply_project, get_project
from tutelage.store.quality_tables import ConsensusLabelRow
from tutelage.store.tables import ComparisonRow, UserRow
from tutelage.store.workspace_tables import ItemRow
from tutelage.workspace.accounts import Actor, create_user
from tutelage.workspace.items import build_items, mark_known_answers
from tutelage.workspace.judging import submit_judgment
from tutelage.workspace.membership import accept_nda, add_member
from tutelage.workspace.queue import next_task, skip_task
from tutelage.workspace.submissions import ComparisonSubmission

__all__ = [
    "DEMO_LOGINS",
    "SIMULATED_EXPERTS",
    "DemoLogin",
    "SimulatedExpert",
    "seed_items",
    "seed_people",
    "seed_simulated_experts",
    "seed_workspace",
]


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    handle: str
    password: str


DEMO_LOGINS = (
    DemoLogin("admin", "admin@demo.tutelage", "admin", "demo-admin-password"),
    DemoLogin("reviewer", "reviewer@demo.tutelage", "demo-reviewer", "demo-reviewer-password"),
    DemoLogin("expert", "expert@demo.tutelage", "dr-demo", "demo-expert-password"),
)

WORKSPACE_SETTINGS = {
    "task_kinds": tuple(TaskKind),
    # Five simulated experts judge every comparison item; two more slots are left for
    # people (the demo expert, and whoever else is added).
    "overlap": 7,
    # Dawid-Skene is nearly sure of every item of a project this small, so majority vote
    # makes the demo's consensus and the items that split the experts go to its reviewer.
    "consensus_method": "majority",
    "qualification_pass_mark": 0.5,
    "gold_rate": 0.1,
    "lease_seconds": 900,
}


@dataclass(frozen=True)
class SimulatedExpert:
    """How one simulated demo expert answers a comparison.

    honest: the truth with probability `accuracy`, else another answer; always_a: the
    answer shown first, whatever it says; flipper: the other answer with probability
    `flip`. `seconds` is the range of active seconds per judgment.
    """

    handle: str
    display_name: str
    kind: Literal["honest", "always_a", "flipper"]
    seconds: tuple[float, float]
    accuracy: float = 1.0
    flip: float = 0.0
    rationales: bool = False


SIMULATED_EXPERTS = (
    SimulatedExpert(
        "demo-expert-1", "Simulated: careful", "honest", (70, 160), accuracy=0.95, rationales=True
    ),
    SimulatedExpert("demo-expert-2", "Simulated: good", "honest", (50, 120), accuracy=0.88),
    SimulatedExpert(
        "demo-expert-3", "Simulated: weaker", "honest", (40, 100), accuracy=0.78, rationales=True
    ),
    SimulatedExpert("demo-expert-4", "Simulated: careless (always A, fast)", "always_a", (2, 5)),
    SimulatedExpert(
        "demo-expert-5",
        "Simulated: label flipper",
        "flipper",
        (45, 110),
        flip=0.85,
        rationales=True,
    ),
)

_OTHER = {"a": "b", "b": "a"}
# Rationales name no letter: the reviewer sees the item's canonical order, not the shown one.
_RATIONALES: dict[str, tuple[str, ...]] = {
    "a": ("Accurate, and it answers what was asked.", "Safer advice, stated clearly."),
    "b": ("Clearer, and nothing in it is wrong.", "The other one misses the question."),
    "tie": ("Both are fine; neither is clearly better.",),
    "both_bad": ("Both get the facts wrong.",),
}


def seed_workspace(
    store: Store, *, redteam_slots: int = 2, simulated: bool = True
) -> tuple[DemoLogin, ...]:
    """Give the demo project people, settings and items, and (`simulated`) the simulated
    experts' judgments with their consensus; later calls change nothing."""
    seed_people(store)
    seed_items(store, redteam_slots=redteam_slots)
    if simulated:
        seed_simulated_experts(store)
    return DEMO_LOGINS


def _admin(session: Session) -> Actor:
    login = DEMO_LOGINS[0]
    user = session.scalar(select(UserRow).where(UserRow.handle == login.handle))
    assert user is not None
    return Actor(user_id=user.id, handle=user.handle, role="admin", expertise=frozenset())


def seed_people(store: Store) -> tuple[DemoLogin, ...]:
    """The demo's admin, reviewer and expert, members of the demo project (once)."""
    with store.session() as session:
        project = get_project(session, name=DEMO_PROJECT.name)
        for login in DEMO_LOGINS:
            existing = session.scalar(select(UserRow).where(UserRow.handle == login.handle))
            if existing is None:
                create_user(
                    session,
                    email=login.email,
                    password=login.password,
                    handle=login.handle,
                    role=login.role,
                    expertise=frozenset({"general"}),
                )
        admin = _admin(session)
        for login in DEMO_LOGINS[1:]:  # a member already stays one, unrecorded
            add_member(session, actor=admin, project_id=project.id, handle=login.handle)
    return DEMO_LOGINS


def seed_items(store: Store, *, redteam_slots: int = 2) -> int:
    """Set the demo project up for every task kind and build its items, once (one
    transaction); returns how many items were built (0 when there were some already)."""
    with store.session() as session:
        project = get_project(session, name=DEMO_PROJECT.name)
        admin = _admin(session)
        if session.scalar(select(func.count(ItemRow.id)).where(ItemRow.project_id == project.id)):
            return 0
        apply_project(project, DEMO_PROJECT.model_copy(update=WORKSPACE_SETTINGS))
        for purpose in ("qualification", "gold"):
            mark_known_answers(
                session, project_id=project.id, purpose=purpose, count=2, actor_id=admin.user_id
            )
        built = build_items(
            session,
            project_id=project.id,
            kinds=tuple(TaskKind),
            actor_id=admin.user_id,
            redteam_slots=redteam_slots,
        )
    return sum(built.created.values())


def seed_simulated_experts(
    store: Store, *, seed: int = 0, on_expert: Callable[[str], None] | None = None
) -> int:
    """Let the simulated experts judge every comparison item through the real queue, then
    compute and store the consensus; returns how many judgments they made (0 when they
    exist already).

    Each expert's account and judgments are one transaction, so an interrupted run
    (Ctrl-C while the demo serves) resumes with the experts that are missing.
    """
    with store.session() as session:
        project_id = get_project(session, name=DEMO_PROJECT.name).id
        admin = _admin(session)
        existing = set(
            session.scalars(
                select(UserRow.handle).where(
                    UserRow.handle.in_([e.handle for e in SIMULATED_EXPERTS])
                )
            )
        )
        truth = _truths(session, project_id, random.Random(f"{seed}-truth"))
        to_judge = len([item for item, purpose in truth.values() if purpose == "task"])
        stored = session.scalar(
            select(func.count(ConsensusLabelRow.id)).where(
                ConsensusLabelRow.project_id == project_id
            )
        )
    made = 0
    for expert in SIMULATED_EXPERTS:
        if expert.handle in existing:
            continue
        if on_expert is not None:
            on_expert(expert.handle)
        with store.session() as session:
            user = create_user(
                session,
                email=f"{expert.handle}@demo.tutelage",
                # Nobody signs in as a simulated expert: the password is never shown.
                password=secrets.token_urlsafe(32),
                handle=expert.handle,
                display_name=expert.display_name,
                expertise=frozenset({"general"}),
                actor_id=admin.user_id,
            )
            actor = Actor(
                user_id=user.id, handle=user.handle, role="expert", expertise=frozenset({"general"})
            )
            add_member(session, actor=admin, project_id=project_id, handle=expert.handle)
            accept_nda(session, actor=actor, project_id=project_id)
            made += _judge(session, expert, actor, project_id, truth, to_judge, seed)
    if made or not stored:
        from tutelage.quality.persist import analyse_project  # the statistics load in seconds

        analyse_project(store, project=DEMO_PROJECT.name, bootstrap=0, save=True)
    return made


def _truths(session: Session, project_id: int, rng: random.Random) -> dict[int, tuple[str, str]]:
    """Item id -> (the right label in the item's canonical order, purpose) for every
    comparison item: the known answer of gold and qualification items, the imported
    winner of a sample pair, and a random one for generated answers."""
    winners = {}
    for first, second, outcome in session.execute(
        select(ComparisonRow.completion_a_id, ComparisonRow.completion_b_id, ComparisonRow.outcome)
        .where(ComparisonRow.project_id == project_id, ComparisonRow.source.is_not(None))
        .order_by(ComparisonRow.id)
    ):
        if outcome in ("a", "b"):
            winners[frozenset((first, second))] = first if outcome == "a" else second
    truths = {}
    items = session.scalars(
        select(ItemRow)
        .where(ItemRow.project_id == project_id, ItemRow.kind == TaskKind.COMPARISON.value)
        .order_by(ItemRow.id)
    )
    for item in items:
        a, b = item.completion_ids[:2]
        winner = (item.gold_answer or {}).get("winner") or winners.get(frozenset((a, b)))
        label = rng.choice("ab") if winner is None else ("a" if winner == a else "b")
        truths[item.id] = (label, item.purpose)
    return truths


def _answer(expert: SimulatedExpert, truth: str, rng: random.Random) -> str:
    """The simulated expert's label, in the item's canonical order (always_a: see _judge)."""
    if expert.kind == "flipper":
        return _OTHER[truth] if rng.random() < expert.flip else truth
    if rng.random() < expert.accuracy:
        return truth
    return rng.choices([_OTHER[truth], "tie", "both_bad"], weights=[85, 10, 5])[0]


def _judge(
    session: Session,
    expert: SimulatedExpert,
    actor: Actor,
    project_id: int,
    truth: dict[int, tuple[str, str]],
    to_judge: int,
    seed: int,
) -> int:
    """Judge what the queue serves until every comparison task item is done; the served
    order (and so position bias) is the queue's own, drawn from a seeded generator."""
    rng = random.Random(f"{seed}-{expert.handle}")
    judged = tasks = 0
    criteria = [c.name for c in DEMO_PROJECT.rubric]
    while tasks < to_judge:
        assignment = next_task(session, actor=actor, project_id=project_id, rng=rng)
        if assignment is None:
            break
        if assignment.item_id not in truth:  # not a comparison: nothing left to compare
            skip_task(
                session,
                actor=actor,
                assignment_id=assignment.id,
                reason="simulated demo expert: judges comparisons only",
            )
            break
        label, purpose = truth[assignment.item_id]
        first_shown = assignment.shown_order[0]
        canonical_first = assignment.item.completion_ids[0]
        swapped = first_shown != canonical_first
        if purpose == "qualification":
            canonical = label  # every simulated expert passed the qualification
        elif expert.kind == "always_a":
            canonical = "b" if swapped else "a"
        else:
            canonical = _answer(expert, label, rng)
        shown = _OTHER.get(canonical, canonical) if swapped else canonical
        if expert.kind == "always_a":
            scores = dict.fromkeys(criteria, 5)  # the same score throughout: straight-lining
        elif rng.random() < 0.4:
            scores = {name: rng.randint(2, 5) for name in criteria}
        else:
            scores = {}
        rationale = ""
        if expert.rationales and rng.random() < 0.5:
            rationale = rng.choice(_RATIONALES[canonical])
        submit_judgment(
            session,
            actor=actor,
            assignment_id=assignment.id,
            submission=ComparisonSubmission(
                choice=shown,
                strength="decisive"
                if expert.kind == "always_a"
                else rng.choice(["slight", "clear", "clear", "decisive"]),
                criteria=scores,
                rationale=rationale,
                active_seconds=round(rng.uniform(*expert.seconds), 1),
            ),
        )
        judged += 1
        tasks += purpose == "task"
    return judged
