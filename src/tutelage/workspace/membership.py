"""Admin work on projects and people: settings, members, expertise, NDA, qualification.

Every change here is written to the audit log in the same transaction.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tutelage.records import Project
from tutelage.store.projects import apply_project, create_project, project_record
from tutelage.store.tables import ProjectRow, UserRow
from tutelage.store.workspace_tables import (
    AssignmentRow,
    ItemRow,
    MembershipRow,
    NdaAcceptanceRow,
)
from tutelage.workspace import audit
from tutelage.workspace.accounts import Actor
from tutelage.workspace.errors import Conflict, NotFound
from tutelage.workspace.policy import membership, nda_hash, require_admin, visible_project
from tutelage.workspace.queue import release_leases

__all__ = [
    "accept_nda",
    "add_member",
    "new_project",
    "remove_member",
    "reset_qualification",
    "set_expertise",
    "update_project",
]


def new_project(session: Session, *, actor: Actor, project: Project) -> ProjectRow:
    require_admin(actor)
    row = create_project(session, project=project)
    audit.record(
        session,
        actor_id=actor.user_id,
        action="project.create",
        project_id=row.id,
        target=row.name,
        details=project.model_dump(mode="json"),
    )
    return row


def update_project(
    session: Session, *, actor: Actor, project_id: int, project: Project
) -> ProjectRow:
    """Replace the project's settings; a changed NDA text must be accepted again."""
    require_admin(actor)
    row = visible_project(session, actor=actor, project_id=project_id)
    before = project_record(row).model_dump(mode="json")
    after = project.model_dump(mode="json")
    if project.name != row.name and session.scalar(
        select(ProjectRow.id).where(ProjectRow.name == project.name)
    ):
        raise Conflict(f"a project named {project.name!r} exists already")
    apply_project(row, project)
    changed = {
        key: {"from": before[key], "to": after[key]} for key in after if before[key] != after[key]
    }
    audit.record(
        session,
        actor_id=actor.user_id,
        action="project.update",
        project_id=row.id,
        target=row.name,
        details=changed,
    )
    if "nda_text" in changed:
        audit.record(
            session,
            actor_id=actor.user_id,
            action="nda.change",
            project_id=row.id,
            details={"text_hash": nda_hash(project.nda_text)},
        )
    return row


def _user(session: Session, handle: str) -> UserRow:
    user = session.scalar(select(UserRow).where(UserRow.handle == handle))
    if user is None:
        raise NotFound(f"no user {handle!r}")
    return user


def add_member(session: Session, *, actor: Actor, project_id: int, handle: str) -> MembershipRow:
    require_admin(actor)
    visible_project(session, actor=actor, project_id=project_id)
    user = _user(session, handle)
    existing = session.scalar(
        select(MembershipRow).where(
            MembershipRow.project_id == project_id, MembershipRow.user_id == user.id
        )
    )
    if existing is not None:
        return existing
    member = MembershipRow(project_id=project_id, user_id=user.id)
    session.add(member)
    session.flush()
    audit.record(
        session, actor_id=actor.user_id, action="member.add", project_id=project_id, target=handle
    )
    return member


def remove_member(session: Session, *, actor: Actor, project_id: int, handle: str) -> None:
    require_admin(actor)
    user = _user(session, handle)
    session.execute(
        delete(MembershipRow).where(
            MembershipRow.project_id == project_id, MembershipRow.user_id == user.id
        )
    )
    # What they held goes back to the queue now, not when its lease would have expired.
    released = release_leases(
        session, project_id=project_id, user_id=user.id, reason="removed from the project"
    )
    audit.record(
        session,
        actor_id=actor.user_id,
        action="member.remove",
        project_id=project_id,
        target=handle,
        details={"leases_released": released},
    )


def set_expertise(
    session: Session, *, actor: Actor, handle: str, expertise: frozenset[str]
) -> None:
    require_admin(actor)
    user = _user(session, handle)
    before = list(user.expertise)
    user.expertise = sorted(expertise)
    audit.record(
        session,
        actor_id=actor.user_id,
        action="member.expertise",
        target=handle,
        details={"from": before, "to": user.expertise},
    )


def accept_nda(session: Session, *, actor: Actor, project_id: int) -> None:
    """Record that the expert accepted the project's current NDA text, now."""
    project = visible_project(session, actor=actor, project_id=project_id)
    if membership(session, actor=actor, project_id=project_id) is None:
        raise NotFound(f"no project {project_id}")
    digest = nda_hash(project.nda_text)
    already = session.scalar(
        select(NdaAcceptanceRow.id).where(
            NdaAcceptanceRow.project_id == project_id,
            NdaAcceptanceRow.user_id == actor.user_id,
            NdaAcceptanceRow.text_hash == digest,
        )
    )
    if already is not None:
        return
    session.add(NdaAcceptanceRow(project_id=project_id, user_id=actor.user_id, text_hash=digest))
    audit.record(
        session,
        actor_id=actor.user_id,
        action="nda.accept",
        project_id=project_id,
        target=actor.handle,
        details={"text_hash": digest},
    )


def reset_qualification(session: Session, *, actor: Actor, project_id: int, handle: str) -> None:
    """Let an expert who failed the qualification take it again."""
    require_admin(actor)
    user = _user(session, handle)
    member = session.scalar(
        select(MembershipRow).where(
            MembershipRow.project_id == project_id, MembershipRow.user_id == user.id
        )
    )
    if member is None:
        raise NotFound(f"{handle!r} is not a member of project {project_id}")
    member.qualification_score = None
    member.qualified_at = None
    qualification_items = select(ItemRow.id).where(
        ItemRow.project_id == project_id, ItemRow.purpose == "qualification"
    )
    session.execute(
        delete(AssignmentRow).where(
            AssignmentRow.user_id == user.id, AssignmentRow.item_id.in_(qualification_items)
        )
    )
    audit.record(
        session,
        actor_id=actor.user_id,
        action="qualification.reset",
        project_id=project_id,
        target=handle,
    )
