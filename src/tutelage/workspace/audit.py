"""The audit log: who changed what in a project, its members, NDA or judgments, and when."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tutelage.interchange import ImportReport
from tutelage.store import core
from tutelage.store.tables import Base
from tutelage.store.workspace_tables import AuditRow

__all__ = ["audit_entries", "record", "record_import"]


# A plain INSERT, built once: every judgment writes an entry.
_APPEND = insert(Base.metadata.tables[AuditRow.__tablename__])


def record(
    session: Session,
    *,
    actor_id: int | None,
    action: str,
    project_id: int | None = None,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> None:
    """Append one entry; it commits (or not) with the change it describes."""
    # A Core statement: it needs nothing pending flushed first (the ids it names exist).
    core(session).execute(
        _APPEND,
        {
            "at": datetime.now(UTC),
            "actor_id": actor_id,
            "action": action,
            "project_id": project_id,
            "target": target,
            "details": details or {},
        },
    )


def record_import(
    session: Session, report: ImportReport, *, actor_id: int, project_id: int, filename: str
) -> None:
    """Append the entry for a data import, inside the import's own transaction."""
    record(
        session,
        actor_id=actor_id,
        action="data.import",
        project_id=project_id,
        target=filename,
        details={
            "import": report.import_id,
            "format": report.format,
            "source": report.source,
            "lines_read": report.lines_read,
            "stored": report.records_stored,
            "skipped": dict(report.skipped),
        },
    )


def audit_entries(
    session: Session, *, project_id: int | None = None, limit: int = 200
) -> list[AuditRow]:
    """Return the newest entries first, for one project or for everything."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if project_id is not None:
        query = query.where(AuditRow.project_id == project_id)
    return list(session.scalars(query))
