"""Building blocks for workspace tests: a project with real content, people, items."""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from tutelage.interchange import import_file
from tutelage.records import Project, RubricCriterion, TaskKind
from tutelage.store import Store
from tutelage.store.projects import get_project
from tutelage.workspace.accounts import Actor, create_user
from tutelage.workspace.items import build_items
from tutelage.workspace.membership import accept_nda, add_member, new_project

PASSWORD = "correct horse battery"
ROOT = Actor(user_id=0, handle="root", role="admin", expertise=frozenset())


@dataclass
class World:
    store: Store
    project_id: int
    admin: Actor
    experts: list[Actor]


def actor_of(user: object) -> Actor:
    return Actor(
        user_id=user.id,  # type: ignore[attr-defined]
        handle=user.handle,  # type: ignore[attr-defined]
        role=user.role,  # type: ignore[attr-defined]
        expertise=frozenset(user.expertise),  # type: ignore[attr-defined]
    )


def pairs_file(folder: Path, count: int) -> Path:
    path = folder / "pairs.jsonl"
    rows = [
        {"prompt": f"Question {i}?", "chosen": f"Good answer {i}.", "rejected": f"Bad answer {i}."}
        for i in range(count)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def make_world(
    store: Store,
    folder: Path,
    *,
    pairs: int = 6,
    experts: int = 2,
    kinds: tuple[TaskKind, ...] = (TaskKind.COMPARISON,),
    sign_nda: bool = True,
    **settings: object,
) -> World:
    project = Project(
        name="cardio",
        domain="medicine",
        rubric=(RubricCriterion(name="accuracy", scale_min=1, scale_max=5),),
        task_kinds=kinds,
        pay_rate_per_hour=Decimal("120"),
        nda_text="Keep it confidential.",
        **settings,  # type: ignore[arg-type]
    )
    with store.session() as session:
        admin = actor_of(
            create_user(
                session, email="admin@example.org", password=PASSWORD, handle="admin", role="admin"
            )
        )
        new_project(session, actor=admin, project=project)
        people = [
            actor_of(
                create_user(
                    session,
                    email=f"expert{i}@example.org",
                    password=PASSWORD,
                    handle=f"expert{i}",
                    expertise=frozenset({"cardiology"}),
                )
            )
            for i in range(experts)
        ]
    import_file(store, path=pairs_file(folder, pairs), project="cardio", source="seed")
    with store.session() as session:
        project_id = get_project(session, name="cardio").id
        for person in people:
            add_member(session, actor=admin, project_id=project_id, handle=person.handle)
            if sign_nda:
                accept_nda(session, actor=person, project_id=project_id)
        build_items(session, project_id=project_id, kinds=kinds, actor_id=admin.user_id)
    return World(store=store, project_id=project_id, admin=admin, experts=people)
