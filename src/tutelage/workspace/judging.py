"""Storing an expert's judgment: once, only after commit, with provenance and gold scoring.

The client sends an idempotency key with each submit. The first request stores the
judgment and the response together in one transaction; a retry with the same key gets
the same response and stores nothing, so a flaky connection never double-counts work.
"""

from __future__ import annotations

import string
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from tutelage.records import Message, Prompt, content_hash
from tutelage.store import core
from tutelage.store.tables import (
    Base,
    ComparisonRow,
    CompletionRow,
    FlagRow,
    ProjectRow,
    PromptRow,
    RankingRow,
    RatingRow,
    RewriteRow,
)
from tutelage.store.workspace_tables import (
    AssignmentRow,
    IdempotencyRow,
    ItemRow,
    MembershipRow,
)
from tutelage.workspace import audit
from tutelage.workspace.accounts import Actor
from tutelage.workspace.errors import Conflict, WorkspaceError
from tutelage.workspace.policy import workable_project
from tutelage.workspace.queue import own_assignment
from tutelage.workspace.submissions import (
    ComparisonSubmission,
    FlagSubmission,
    RankingSubmission,
    RatingSubmission,
    RedteamSubmission,
    RewriteSubmission,
    Submission,
)

__all__ = ["Raced", "request_hash", "submit_judgment"]

LETTERS = string.ascii_uppercase


def _invalid(message: str) -> WorkspaceError:
    return WorkspaceError(message, code="invalid_judgment")


def _completion_for(letter: str, order: list[int]) -> int:
    position = LETTERS.index(letter)
    if position >= len(order):
        raise _invalid(f"there is no answer {letter} in this item")
    return order[position]


def _check_scores(project: ProjectRow, scores: dict[str, int]) -> None:
    rubric = {c["name"]: c for c in project.rubric}
    for name, value in scores.items():
        criterion = rubric.get(name)
        if criterion is None:
            raise _invalid(f"{name!r} is not a criterion of this project's rubric")
        if not criterion["scale_min"] <= value <= criterion["scale_max"]:
            raise _invalid(
                f"{name!r} is scored from {criterion['scale_min']} to {criterion['scale_max']},"
                f" got {value}"
            )


def _check_rationale(project: ProjectRow, rationale: str) -> None:
    if project.rationale_required and not rationale.strip():
        raise _invalid("this project asks for a written rationale with each judgment")


def _provenance(
    actor: Actor, assignment: AssignmentRow, item: ItemRow, submission: Any
) -> dict[str, Any]:
    # `purpose` lets later stages keep gold and qualification answers out of datasets.
    return {
        "expert_id": actor.user_id,
        "source": None,
        "active_seconds": submission.active_seconds,
        "shown": {
            "assignment": assignment.id,
            "item": item.id,
            "purpose": item.purpose,
            "order": list(assignment.shown_order),
        },
    }


_comparisons = Base.metadata.tables[ComparisonRow.__tablename__]
_INSERT_COMPARISON = insert(_comparisons).returning(_comparisons.c.id)


def _store(
    session: Session,
    *,
    actor: Actor,
    project: ProjectRow,
    item: ItemRow,
    assignment: AssignmentRow,
    submission: Submission,
) -> tuple[list[int], bool | None]:
    """Store the judgment rows; return their ids and, for known-answer items, correctness."""
    order = list(assignment.shown_order)
    common = {"project_id": project.id, **_provenance(actor, assignment, item, submission)}
    if isinstance(submission, ComparisonSubmission):
        _check_scores(project, submission.criteria)
        _check_rationale(project, submission.rationale)
        # The most frequent judgment, stored by a prepared INSERT rather than the ORM's
        # unit of work, which costs more than the insert itself.
        comparison_id = core(session).scalar(
            _INSERT_COMPARISON,
            {
                "prompt_id": item.prompt_id,
                "completion_a_id": order[0],
                "completion_b_id": order[1],
                "outcome": submission.choice.value,
                "strength": submission.strength.value if submission.strength else None,
                "criteria": submission.criteria,
                "rationale": submission.rationale,
                "created_at": datetime.now(UTC),
                **common,
            },
        )
        assert comparison_id is not None
        correct = None
        if item.gold_answer is not None:
            winner = {"a": order[0], "b": order[1]}.get(submission.choice.value)
            correct = winner == item.gold_answer.get("winner")
        return [comparison_id], correct
    if isinstance(submission, RankingSubmission):
        shown = set(LETTERS[: len(order)])
        if sorted(submission.order) != sorted(shown):
            raise _invalid(f"rank every answer once: {', '.join(sorted(shown))}")
        _check_rationale(project, submission.rationale)
        ranking = RankingRow(
            prompt_id=item.prompt_id,
            order=[_completion_for(letter, order) for letter in submission.order],
            rationale=submission.rationale,
            **common,
        )
        session.add(ranking)
        session.flush()
        return [ranking.id], None
    if isinstance(submission, RatingSubmission):
        _check_scores(project, submission.scores)
        _check_rationale(project, submission.rationale)
        rating = RatingRow(
            prompt_id=item.prompt_id,
            completion_id=order[0],
            scores=submission.scores,
            rationale=submission.rationale,
            **common,
        )
        session.add(rating)
        session.flush()
        return [rating.id], None
    if isinstance(submission, RewriteSubmission):
        rewrite = RewriteRow(
            prompt_id=item.prompt_id,
            completion_id=_completion_for(submission.base, order),
            text=submission.text,
            **common,
        )
        session.add(rewrite)
        session.flush()
        return [rewrite.id], None
    if isinstance(submission, FlagSubmission):
        rows = []
        for span in submission.flags:
            completion_id = _completion_for(span.answer, order)
            length = session.scalar(
                select(func.length(CompletionRow.text)).where(CompletionRow.id == completion_id)
            )
            if span.end <= span.start or span.end > (length or 0):
                raise _invalid(
                    f"flag span [{span.start}, {span.end}) is not inside answer {span.answer}"
                )
            rows.append(
                FlagRow(
                    prompt_id=item.prompt_id,
                    completion_id=completion_id,
                    span_start=span.start,
                    span_end=span.end,
                    flag=span.flag.value,
                    note=span.note,
                    **common,
                )
            )
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows], None
    assert isinstance(submission, RedteamSubmission)
    prompt = Prompt(messages=(Message(role="user", content=submission.prompt),))
    row = PromptRow(
        project_id=project.id,
        key=prompt.key(),
        messages=[m.model_dump() for m in prompt.messages],
        author_id=actor.user_id,
    )
    if session.scalar(
        select(PromptRow.id).where(PromptRow.project_id == project.id, PromptRow.key == row.key)
    ):
        raise Conflict("this project has that prompt already: write a new one")
    session.add(row)
    session.flush()
    return [row.id], None


def _score_qualification(session: Session, project: ProjectRow, user_id: int) -> None:
    total = session.scalar(
        select(func.count(ItemRow.id)).where(
            ItemRow.project_id == project.id, ItemRow.purpose == "qualification"
        )
    )
    answered = session.execute(
        select(AssignmentRow.correct)
        .join(ItemRow, ItemRow.id == AssignmentRow.item_id)
        .where(
            ItemRow.project_id == project.id,
            ItemRow.purpose == "qualification",
            AssignmentRow.user_id == user_id,
            AssignmentRow.status == "submitted",
        )
    ).all()
    if not total or len(answered) < total:
        return
    score = sum(1 for (correct,) in answered if correct) / total
    member = session.scalar(
        select(MembershipRow).where(
            MembershipRow.project_id == project.id, MembershipRow.user_id == user_id
        )
    )
    assert member is not None
    member.qualification_score = score
    passed = (
        project.qualification_pass_mark is not None and score >= project.qualification_pass_mark
    )
    if passed:
        member.qualified_at = datetime.now(UTC)
    audit.record(
        session,
        actor_id=user_id,
        action="qualification.pass" if passed else "qualification.fail",
        project_id=project.id,
        details={"score": score},
    )


def _reclaim(session: Session, project: ProjectRow, item: ItemRow) -> None:
    """Take a slot again for a lease that expired while the expert was still working."""
    if item.purpose != "task":
        return
    claimed = session.execute(
        update(ItemRow)
        .where(ItemRow.id == item.id, ItemRow.judged + ItemRow.leased < project.overlap)
        .values(leased=ItemRow.leased + 1)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("your time on this item ran out and others have judged it since")


# Built once: every submit runs them (see accounts.py for why).
_EARLIER_ANSWER = select(
    IdempotencyRow.user_id, IdempotencyRow.response, IdempotencyRow.request_hash
).where(IdempotencyRow.key == bindparam("key"))
_REMEMBER_ANSWER = insert(Base.metadata.tables[IdempotencyRow.__tablename__])
_assignments = Base.metadata.tables[AssignmentRow.__tablename__]
_SUBMITTED = (
    update(_assignments)
    # only an open assignment: of two requests racing on PostgreSQL, the second's
    # update waits for the first's commit and then matches nothing
    .where(
        _assignments.c.id == bindparam("assignment_id"),
        _assignments.c.status.in_(("leased", "expired")),
    )
    .values(
        status=bindparam("status"),
        finished_at=bindparam("finished_at"),
        active_seconds=bindparam("active_seconds"),
        judgment_kind=bindparam("judgment_kind"),
        judgment_id=bindparam("judgment_id"),
        correct=bindparam("correct"),
    )
)
# The item row is not read again in this transaction, so the ORM need not update it.
_JUDGED = (
    update(ItemRow)
    .where(ItemRow.id == bindparam("item_id"))
    .values(judged=ItemRow.judged + 1, leased=ItemRow.leased - bindparam("freed"))
    .execution_options(synchronize_session=False)
)


class Raced(Conflict):
    """Another request stored this judgment, or used this key, while this one ran: its
    transaction is rolled back, and running it once more (`recheck`) finds what won."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="raced")


def request_hash(assignment_id: int, submission: Submission) -> str:
    """What a retry must send again to get the first answer: the assignment and the
    judgment. Not its active seconds, which a retry from the page measures anew."""
    judgment = submission.model_dump(mode="json", exclude={"active_seconds"})
    return content_hash({"assignment_id": assignment_id, "judgment": judgment})


def _earlier_answer(
    session: Session, *, actor: Actor, key: str, fingerprint: str
) -> dict[str, Any] | None:
    earlier = core(session).execute(_EARLIER_ANSWER, {"key": key}).first()
    if earlier is None:
        return None
    if earlier.user_id != actor.user_id:
        raise Conflict("that idempotency key was used by someone else")
    if earlier.request_hash is not None and earlier.request_hash != fingerprint:
        raise Conflict(
            "that idempotency key was sent before with another judgment, which was stored: "
            "nothing was stored now (use a new key for each judgment)",
            code="idempotency_key_reused",
        )
    return dict(earlier.response)


def submit_judgment(
    session: Session,
    *,
    actor: Actor,
    assignment_id: int,
    submission: Submission,
    idempotency_key: str | None = None,
    recheck: bool = False,
) -> dict[str, Any]:
    """Store the judgment for one of the expert's assignments and return the receipt.

    With an idempotency key, the same judgment sent again gets the first receipt and
    stores nothing; another judgment with that key is refused (409). Raises `Raced` when
    a concurrent request won (PostgreSQL runs them side by side); `recheck`, the caller's
    second try, then finds the winner's answer.
    """
    assignment = own_assignment(session, actor=actor, assignment_id=assignment_id)
    fingerprint = request_hash(assignment_id, submission)
    # A retry finds its first attempt's answer only if that attempt was committed, and
    # then the assignment is closed: while it is still leased there is nothing to find
    # (one statement saved on every first attempt), unless a race says to look again.
    if idempotency_key is not None and (recheck or assignment.status != "leased"):
        earlier = _earlier_answer(
            session, actor=actor, key=idempotency_key, fingerprint=fingerprint
        )
        if earlier is not None:
            return earlier
    project, _member = workable_project(session, actor=actor, project_id=assignment.project_id)
    item = session.get(ItemRow, assignment.item_id)
    assert item is not None
    if submission.kind != item.kind:
        raise _invalid(f"this item asks for a {item.kind}, not a {submission.kind}")
    if assignment.status in ("submitted", "skipped"):
        raise Conflict(f"this item was {assignment.status} already")
    if assignment.status == "expired":
        _reclaim(session, project, item)
    ids, correct = _store(
        session,
        actor=actor,
        project=project,
        item=item,
        assignment=assignment,
        submission=submission,
    )
    now = datetime.now(UTC)
    outcome = {
        "status": "submitted",
        "finished_at": now,
        "active_seconds": submission.active_seconds,
        "judgment_kind": submission.kind,
        "judgment_id": ids[0] if ids else None,
        "correct": correct,
    }
    closed = core(session).execute(_SUBMITTED, {"assignment_id": assignment.id, **outcome})
    if closed.rowcount != 1:
        raise Raced("another request submitted this item at the same moment")
    for name, value in outcome.items():  # as stored, without the ORM writing it again
        set_committed_value(assignment, name, value)
    # Only task items hold counted slots; gold and qualification items are served to all.
    freed = 1 if item.purpose == "task" else 0
    core(session).execute(_JUDGED, {"item_id": item.id, "freed": freed})
    if item.purpose == "qualification":
        session.flush()
        _score_qualification(session, project, actor.user_id)
    audit.record(
        session,
        actor_id=actor.user_id,
        action=f"judgment.{submission.kind}",
        project_id=project.id,
        target=f"item {item.id}",
        details={"assignment": assignment.id, "ids": ids},
    )
    response: dict[str, Any] = {
        "assignment_id": assignment.id,
        "kind": submission.kind,
        "judgment_ids": ids,
        "stored_at": now.isoformat(),
    }
    if idempotency_key is not None:
        try:
            core(session).execute(
                _REMEMBER_ANSWER,
                {
                    "key": idempotency_key,
                    "user_id": actor.user_id,
                    "response": response,
                    "request_hash": fingerprint,
                    "created_at": now,
                },
            )
        except IntegrityError as exc:  # the key is taken: the transaction is rolled back
            if recheck:  # taken by a request for another assignment
                raise Conflict(
                    "that idempotency key was sent before with another judgment: "
                    "use a new key for each judgment",
                    code="idempotency_key_reused",
                ) from exc
            raise Raced(
                "that idempotency key was sent before with another request: "
                "use a new key for each judgment"
            ) from exc
    return response
