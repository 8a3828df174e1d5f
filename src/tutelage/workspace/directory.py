"""Which projects a person sees, and where they stand in each (NDA, qualification)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.store.tables import ProjectRow
from tutelage.store.workspace_tables import MembershipRow
from tutelage.workspace.accounts import Actor
from tutelage.workspace.policy import accepted_current_nda, membership

__all__ = ["project_summary", "visible_projects"]


def project_summary(session: Session, *, actor: Actor, project: ProjectRow) -> dict[str, Any]:
    """Return what an expert may know of a project, with their own standing in it."""
    member = membership(session, actor=actor, project_id=project.id)
    return {
        "id": project.id,
        "name": project.name,
        "domain": project.domain,
        "instructions": project.instructions,
        "rubric": project.rubric,
        "task_kinds": project.task_kinds,
        "rationale_required": project.rationale_required,
        "nda_text": project.nda_text,
        "nda_accepted": accepted_current_nda(session, actor=actor, project=project),
        "qualification_required": project.qualification_pass_mark is not None,
        "qualified": member is not None and member.qualified_at is not None,
        "pay_rate_per_hour": str(project.pay_rate_per_hour),
        "currency": project.currency,
    }


def visible_projects(session: Session, *, actor: Actor) -> list[dict[str, Any]]:
    """Return the projects this person may see: all for admins, their own for others."""
    query = select(ProjectRow).order_by(ProjectRow.name)
    if not actor.is_admin:
        query = query.join(MembershipRow, MembershipRow.project_id == ProjectRow.id).where(
            MembershipRow.user_id == actor.user_id
        )
    return [project_summary(session, actor=actor, project=p) for p in session.scalars(query)]
