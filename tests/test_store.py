"""The store: schema, migrations, defaults, constraints and durability."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError

from tutelage.records import Project
from tutelage.settings import default_db_url
from tutelage.store import Store, StoreError, open_store
from tutelage.store.migrate import current_revision, head_revision
from tutelage.store.projects import create_project, get_project
from tutelage.store.tables import Base, ComparisonRow, CompletionRow, PromptRow


# The queue's expression index cannot be reflected, so autogenerate says it skips it.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_a_new_store_is_migrated_to_the_tables_the_code_declares(store: Store) -> None:
    assert current_revision(store.engine) == head_revision()
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_default_store_lives_in_tutelage_home(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert default_db_url() == f"sqlite:///{isolated_home / 'tutelage.db'}"
    store = open_store()
    store.close()
    assert (isolated_home / "tutelage.db").is_file()
    monkeypatch.setenv("TUTELAGE_DB", "sqlite:////elsewhere/x.db")
    assert default_db_url() == "sqlite:////elsewhere/x.db"


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_a_store_at_another_revision_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    open_store(url).close()
    store = open_store(url)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0000_old'"))
    store.close()
    with pytest.raises(StoreError, match="tutelage db upgrade"):
        open_store(url)


def test_unsupported_and_malformed_urls_are_refused() -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        open_store("mysql://root@localhost/x")
    with pytest.raises(StoreError, match="not a database URL"):
        open_store("not a url")


def test_a_comparison_needs_exactly_one_author(store: Store) -> None:
    with store.session() as session:
        project_id = create_project(session, project=Project(name="p")).id
        prompt_id = session.scalar(
            insert(PromptRow)
            .values(project_id=project_id, key="k", messages=[])
            .returning(PromptRow.id)
        )
        ids = [
            session.scalar(
                insert(CompletionRow)
                .values(prompt_id=prompt_id, key=key, text=key)
                .returning(CompletionRow.id)
            )
            for key in ("a", "b")
        ]
    row = {
        "project_id": project_id,
        "prompt_id": prompt_id,
        "completion_a_id": ids[0],
        "completion_b_id": ids[1],
        "outcome": "a",
    }
    with pytest.raises(IntegrityError), store.session() as session:
        session.execute(insert(ComparisonRow).values(**row))  # neither expert nor source
    with pytest.raises(IntegrityError), store.session() as session:
        session.execute(insert(ComparisonRow).values({**row, "source": "x", "outcome": "maybe"}))
    with store.session() as session:
        session.execute(insert(ComparisonRow).values(**row, source="x"))


def test_duplicate_project_names_are_refused(store: Store) -> None:
    with store.session() as session:
        create_project(session, project=Project(name="p"))
    with pytest.raises(StoreError, match="exists already"), store.session() as session:
        create_project(session, project=Project(name="p"))


def test_an_acknowledged_write_survives_a_killed_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    script = (
        "import os, signal\n"
        "from tutelage.records import Project\n"
        "from tutelage.store import open_store\n"
        "from tutelage.store.projects import create_project\n"
        f"store = open_store({url!r})\n"
        "with store.session() as session:\n"
        "    create_project(session, project=Project(name='kept'))\n"
        "print('acknowledged', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "acknowledged"
    assert result.returncode == -9
    store = open_store(url)
    with store.session() as session:
        assert get_project(session, name="kept").name == "kept"
    store.close()


def test_upgrading_from_the_first_schema_keeps_the_data(tmp_path: Path) -> None:
    from tutelage.store.engine import create_store_engine
    from tutelage.store.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_store_engine(url)
    upgrade(engine, "0001")
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
        project = get_project(session, name="old")
        assert (project.domain, project.overlap, project.task_kinds) == ("law", 3, ["comparison"])
    store.close()


def test_the_audit_log_is_append_only(store: Store) -> None:
    from sqlalchemy.exc import DBAPIError

    from tutelage.store.workspace_tables import AuditRow

    with store.session() as session:
        session.add(AuditRow(action="project.create", target="p"))
    with pytest.raises(DBAPIError, match="append-only"), store.session() as session:
        session.execute(text("UPDATE audit_log SET action = 'forged'"))
    with pytest.raises(DBAPIError, match="append-only"), store.session() as session:
        session.execute(text("DELETE FROM audit_log"))
    with store.session() as session:
        assert session.scalar(text("SELECT action FROM audit_log")) == "project.create"
