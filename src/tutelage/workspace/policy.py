"""May this person do this? Project visibility, NDA and qualification, decided in one place.

Experts see only projects they are members of; asking for another project's anything
answers "not found", so ids do not reveal which projects exist.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from tutelage.store import core
from tutelage.store.tables import ProjectRow
from tutelage.store.workspace_tables import MembershipRow, NdaAcceptanceRow
from tutelage.workspace.accounts import Actor
from tutelage.workspace.errors import Forbidden, NeedsNda, NotFound

__all__ = [
    "accepted_current_nda",
    "membership",
    "nda_hash",
    "require_admin",
    "require_reviewer",
    "reviewable_project",
    "visible_project",
    "workable_project",
]


def nda_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def require_admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise Forbidden("only an admin may do this")


def require_reviewer(actor: Actor) -> None:
    if not actor.is_reviewer:
        raise Forbidden("only a reviewer or admin may do this")


# Statements on every expert request are built once (see accounts.py for why).
_MEMBERSHIP = select(MembershipRow).where(
    MembershipRow.project_id == bindparam("project_id"),
    MembershipRow.user_id == bindparam("user_id"),
)
# The text hash of the NDA the person accepted last in the project: the current text's,
# nearly always, which saves the work paths a statement (`workable_project`).
_LATEST_NDA = (
    select(NdaAcceptanceRow.text_hash)
    .where(
        NdaAcceptanceRow.project_id == ProjectRow.id,
        NdaAcceptanceRow.user_id == bindparam("user_id"),
    )
    .order_by(NdaAcceptanceRow.id.desc())
    .limit(1)
    .correlate(ProjectRow)
    .scalar_subquery()
)
_PROJECT_AND_MEMBERSHIP = (
    select(ProjectRow, MembershipRow, _LATEST_NDA)
    .outerjoin(
        MembershipRow,
        and_(
            MembershipRow.project_id == ProjectRow.id,
            MembershipRow.user_id == bindparam("user_id"),
        ),
    )
    .where(ProjectRow.id == bindparam("project_id"))
)
_NDA_ACCEPTED = select(NdaAcceptanceRow.id).where(
    NdaAcceptanceRow.project_id == bindparam("project_id"),
    NdaAcceptanceRow.user_id == bindparam("user_id"),
    NdaAcceptanceRow.text_hash == bindparam("text_hash"),
)


def membership(session: Session, *, actor: Actor, project_id: int) -> MembershipRow | None:
    return session.scalar(_MEMBERSHIP, {"project_id": project_id, "user_id": actor.user_id})


def _project_and_membership(
    session: Session, *, actor: Actor, project_id: int
) -> tuple[ProjectRow | None, MembershipRow | None, str | None]:
    """Return the project, the actor's membership and the hash of the NDA they accepted
    last in it (None for what is not there)."""
    row = session.execute(
        _PROJECT_AND_MEMBERSHIP, {"project_id": project_id, "user_id": actor.user_id}
    ).first()
    return (None, None, None) if row is None else (row[0], row[1], row[2])


def visible_project(session: Session, *, actor: Actor, project_id: int) -> ProjectRow:
    """Return the project if `actor` may see it: admins see all, others their own."""
    project, member, _ = _project_and_membership(session, actor=actor, project_id=project_id)
    if project is None or (not actor.is_admin and member is None):
        raise NotFound(f"no project {project_id}")
    return project


def accepted_current_nda(session: Session, *, actor: Actor, project: ProjectRow) -> bool:
    if not project.nda_text:
        return True
    return (
        core(session).scalar(
            _NDA_ACCEPTED,
            {
                "project_id": project.id,
                "user_id": actor.user_id,
                "text_hash": nda_hash(project.nda_text),
            },
        )
        is not None
    )


def reviewable_project(session: Session, *, actor: Actor, project_id: int) -> ProjectRow:
    """Return the project if `actor` may adjudicate its items: an admin, or a reviewer who
    is a member and accepted its current NDA (the queue shows prompts and answers)."""
    require_reviewer(actor)
    project = visible_project(session, actor=actor, project_id=project_id)
    if not actor.is_admin and not accepted_current_nda(session, actor=actor, project=project):
        raise NeedsNda("accept the project's current NDA before seeing any item")
    return project


def workable_project(
    session: Session, *, actor: Actor, project_id: int
) -> tuple[ProjectRow, MembershipRow]:
    """Return the project and membership of an expert who may see items: member, NDA signed,
    and holding the expertise the project requires."""
    project, member, latest_nda = _project_and_membership(
        session, actor=actor, project_id=project_id
    )
    if project is None or (member is None and not actor.is_admin):
        raise NotFound(f"no project {project_id}")
    if member is None:
        raise Forbidden("only members of the project work on its items")
    # the NDA accepted last is the current one, or else any accepted earlier may be
    signed = bool(latest_nda) and latest_nda == nda_hash(project.nda_text or "")
    if not signed and not accepted_current_nda(session, actor=actor, project=project):
        raise NeedsNda("accept the project's current NDA before seeing any item")
    missing = set(project.required_expertise) - actor.expertise
    if missing:
        raise Forbidden(
            f"this project needs expertise you have not got: {', '.join(sorted(missing))}"
        )
    return project, member
