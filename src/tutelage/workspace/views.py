"""What an expert is shown for an item: blinded, rendered, and nothing more.

A task view never carries model ids or versions, other experts' judgments or
identities, or whether the item is a gold check: only the conversation, the answers
under the letters of this assignment's random order, and the project's rubric.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from tutelage.store import core
from tutelage.store.tables import CompletionRow, PromptRow
from tutelage.store.workspace_tables import AssignmentRow
from tutelage.workspace.rendering import render_markdown, render_plain

__all__ = ["AnswerView", "MessageView", "TaskView", "task_view"]


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
# messages come with each answer's row: one statement instead of two.
_TEXTS = (
    select(CompletionRow.id, CompletionRow.text, PromptRow.messages)
    .join(PromptRow, PromptRow.id == CompletionRow.prompt_id)
    .where(CompletionRow.id.in_(bindparam("ids", expanding=True)))
)
_MESSAGES = select(PromptRow.messages).where(PromptRow.id == bindparam("prompt_id"))


def task_view(session: Session, *, assignment: AssignmentRow) -> TaskView:
    item, project = assignment.item, assignment.project
    rows = core(session).execute(_TEXTS, {"ids": list(assignment.shown_order)}).all()
    texts = {completion_id: text for completion_id, text, _ in rows}
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
        AnswerView(letter, texts[completion_id], str(render_markdown(texts[completion_id])))
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
