"""The demo workspace: an admin, an expert, and the demo project set up for every task kind.

Used by `make demo` (then served) and by the browser tests, so what a new user sees
first is what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from tutelage.demo import DEMO_PROJECT
from tutelage.records import TaskKind
from tutelage.store import Store
from tutelage.store.projects import apply_project, get_project
from tutelage.store.tables import UserRow
from tutelage.store.workspace_tables import ItemRow
from tutelage.workspace.accounts import Actor, create_user
from tutelage.workspace.items import build_items, mark_known_answers
from tutelage.workspace.membership import add_member

__all__ = ["DEMO_LOGINS", "DemoLogin", "seed_workspace"]


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    handle: str
    password: str


DEMO_LOGINS = (
    DemoLogin("admin", "admin@demo.tutelage", "admin", "demo-admin-password"),
    DemoLogin("expert", "expert@demo.tutelage", "dr-demo", "demo-expert-password"),
)

WORKSPACE_SETTINGS = {
    "task_kinds": tuple(TaskKind),
    "overlap": 2,
    "qualification_pass_mark": 0.5,
    "gold_rate": 0.1,
    "lease_seconds": 900,
}


def seed_workspace(store: Store, *, redteam_slots: int = 2) -> tuple[DemoLogin, ...]:
    """Give the demo project people, settings and items; later calls change nothing."""
    admin_login, expert_login = DEMO_LOGINS
    with store.session() as session:
        project = get_project(session, name=DEMO_PROJECT.name)
        if session.scalar(select(func.count(ItemRow.id)).where(ItemRow.project_id == project.id)):
            return DEMO_LOGINS
        users = {}
        for login in DEMO_LOGINS:
            existing = session.scalar(select(UserRow).where(UserRow.handle == login.handle))
            users[login.role] = existing or create_user(
                session,
                email=login.email,
                password=login.password,
                handle=login.handle,
                role=login.role,
                expertise=frozenset({"general"}),
            )
        apply_project(project, DEMO_PROJECT.model_copy(update=WORKSPACE_SETTINGS))
        admin = Actor(
            user_id=users["admin"].id, handle=admin_login.handle, role="admin",
            expertise=frozenset(),
        )  # fmt: skip
        add_member(session, actor=admin, project_id=project.id, handle=expert_login.handle)
        for purpose in ("qualification", "gold"):
            mark_known_answers(
                session, project_id=project.id, purpose=purpose, count=2, actor_id=admin.user_id
            )
        build_items(
            session,
            project_id=project.id,
            kinds=tuple(TaskKind),
            actor_id=admin.user_id,
            redteam_slots=redteam_slots,
        )
    return DEMO_LOGINS
