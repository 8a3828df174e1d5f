"""What an expert is shown for an item: blinded, rendered, and nothing more.

A task view never carries model ids or versions, other experts' judgments or
identities, or whether the item is a gold check: only the conversation, the answers
under the letters of this assignment's random order, and the project's rubric.
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select
from sqlalchemy.orm import Session

from tutelage.store import core
from tutelage.store.tables import CompletionRow, PromptRow
from tutelage.store.workspace_tables import AssignmentRow, RenderedAnswerRow
from tutelage.workspace.rendering import RENDERER, render_markdown, render_plain

__all__ = ["AnswerView", "MessageView", "TaskView", "render_answers", "task_view"]


@dataclass(frozen=True)
class MessageView:
    role: str
    text: str
    html: str


@dataclass(frozen=True)
class AnswerView:
    letter: str
    text: str
    html: str


@dataclass(frozen=True)
class TaskView:
    assignment_id: int
    project_id: int
    kind: str
    instructions: str
    rubric: list[dict[str, Any]]
    rationale_required: bool
    conversation: list[MessageView]
    answers: list[AnswerView]
    expires_at: datetime

    def as_json(self) -> dict[str, Any]:
        # By hand rather than dataclasses.asdict, whose deep copy is a tenth of a next-task call.
        return {
            "assignment_id": self.assignment_id,
            "project_id": self.project_id,
            "kind": self.kind,
            "instructions": self.instructions,
            "rubric": self.rubric,
            "rationale_required": self.rationale_required,
            "conversation": [dict(vars(message)) for message in self.conversation],
            "answers": [dict(vars(answer)) for answer in self.answers],
            "expires_at": self.expires_at.isoformat(),
        }


# Built once: every next-task call shows a view (see accounts.py for why). The prompt's
# messages, and the answer's HTML if this renderer made it already, come with each
# answer's row: one statement.
_TEXTS = (
    select(CompletionRow.id, CompletionRow.text, PromptRow.messages, RenderedAnswerRow.html)
    .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
    .outerjoin(
        RenderedAnswerRow,
        and_(
            RenderedAnswerRow.completion_id == CompletionRow.id,
            RenderedAnswerRow.renderer == bindparam("renderer"),
        ),
    )
    .where(CompletionRow.id.in_(bindparam("ids", expanding=True)))
)
_MESSAGES = select(PromptRow.messages).where(PromptRow.id == bindparam("prompt_id"))


def task_view(session: Session, *, assignment: AssignmentRow) -> TaskView:
    item, project = assignment.item, assignment.project
    rows = (
        core(session)
        .execute(_TEXTS, {"ids": list(assignment.shown_order), "renderer": RENDERER})
        .all()
    )
    texts = {row.id: row.text for row in rows}
    # rendered when the items were built (`render_answers`), else now
    answer_html = {row.id: row.html or str(render_markdown(row.text)) for row in rows}
    messages: list[dict[str, str]] = []
    if rows:  # an item's answers all answer its prompt
        messages = rows[0].messages
    elif item.prompt_id is not None:
        messages = core(session).scalar(_MESSAGES, {"prompt_id": item.prompt_id}) or []
    conversation: list[MessageView] = []
    for message in messages:
        # Users' and system turns are plain text; earlier assistant turns are model output.
        html = (
            render_markdown(message["content"])
            if message["role"] == "assistant"
            else render_plain(message["content"])
        )
        conversation.append(MessageView(message["role"], message["content"], str(html)))
    answers = [
        AnswerView(letter, texts[completion_id], answer_html[completion_id])
        for letter, completion_id in zip(
            string.ascii_uppercase, assignment.shown_order, strict=False
        )
    ]
    return TaskView(
        assignment_id=assignment.id,
        project_id=project.id,
        kind=item.kind,
        instructions=project.instructions,
        rubric=list(project.rubric),
        rationale_required=project.rationale_required,
        conversation=conversation,
        answers=answers,
        expires_at=assignment.expires_at,
    )


_CHUNK = 500  # ids per statement, well under every database's limit on parameters


def render_answers(session: Session, completion_ids: Iterable[int]) -> int:
    """Render these answers to the HTML the workspace shows and store it, for those that
    have none from this renderer (`RENDERER`); return how many were rendered. Items call
    this when they are built, so that showing an answer reads HTML rather than making it.
    """
    wanted = sorted(set(completion_ids))
    current: set[int] = set()
    for start in range(0, len(wanted), _CHUNK):
        current.update(
            session.scalars(
                select(RenderedAnswerRow.completion_id).where(
                    RenderedAnswerRow.completion_id.in_(wanted[start : start + _CHUNK]),
                    RenderedAnswerRow.renderer == RENDERER,
                )
            )
        )
    missing = [completion_id for completion_id in wanted if completion_id not in current]
    for start in range(0, len(missing), _CHUNK):
        chunk = missing[start : start + _CHUNK]
        texts = session.execute(
            select(CompletionRow.id, CompletionRow.text).where(CompletionRow.id.in_(chunk))
        ).all()
        if not texts:  # answers deleted since: nothing to show, nothing to store
            continue
        # HTML from another renderer is replaced, not kept beside
        session.execute(delete(RenderedAnswerRow).where(RenderedAnswerRow.completion_id.in_(chunk)))
        session.execute(
            insert(RenderedAnswerRow),
            [
                {
                    "completion_id": completion_id,
                    "renderer": RENDERER,
                    "html": str(render_markdown(text)),
                }
                for completion_id, text in texts
            ],
        )
    return len(missing)
