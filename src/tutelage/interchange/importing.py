"""`tutelage import`: a preference or chat file into a project, all or nothing.

The records are staged in batches of short transactions and published in one short
transaction at the end (`tutelage.store.staging`): the experts' submits go on while a
large file imports, and no reader sees part of it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from tutelage.files import crash_point, file_sha256
from tutelage.formats import FormatError, detect_format, read_file
from tutelage.records import ChatExample, PreferencePair, Project
from tutelage.store import Store, StoreError
from tutelage.store.projects import ProjectNotFound, create_project, get_project
from tutelage.store.staging import Staging, remove_stagings, stale_stagings
from tutelage.store.tables import ImportRow, ProjectRow

__all__ = ["ALREADY_STORED", "IDENTICAL", "ImportReport", "import_file"]

IDENTICAL = "chosen and rejected are identical"
ALREADY_STORED = "stored already by an earlier import"
_EXAMPLES_KEPT = 5
BATCH = 1000  # records a staging transaction writes: tens of milliseconds of the writer


@dataclass
class ImportReport:
    """What an import read, stored and skipped, and why."""

    path: str
    project: str
    format: str
    source: str
    import_id: int = 0
    project_created: bool = False
    lines_read: int = 0
    records_stored: int = 0
    prompts_added: int = 0
    completions_added: int = 0
    comparisons_added: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


def _refuse_repeats(report: ImportReport, *, only_new: bool) -> None:
    repeated = report.skipped[ALREADY_STORED]
    if repeated == 0 or only_new:
        return
    new = report.records_stored
    raise StoreError(
        f"{report.path}: {repeated:,} of its {repeated + new:,} records are stored already "
        f"in project {report.project!r} (from source {report.source!r}), whatever the file's "
        f"bytes; nothing was stored" + (f" (--only-new stores the {new:,} new ones)" if new else "")
    )


def _default_source(path: Path, fmt: str) -> str:
    if fmt == "hh-rlhf":
        return "hh-rlhf"
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".parquet"):
        name = name.removesuffix(suffix)
    return name or fmt


def import_file(
    store: Store,
    *,
    path: Path,
    project: str,
    fmt: str | None = None,
    source: str | None = None,
    licence: str = "unspecified",
    consent: str = "",
    skip_invalid: bool = False,
    only_new: bool = False,
    on_line: Callable[[int], None] | None = None,
    before_commit: Callable[[Session, ImportReport], None] | None = None,
) -> ImportReport:
    """Import `path` into `project`, all or nothing, and return the report.

    A bad line raises `FormatError` naming file, line and field, and nothing from the
    file is stored, unless `skip_invalid`, which stores the valid records and counts
    the skipped lines by reason. Pairs whose chosen and rejected are identical are
    always skipped and counted. The project is created if it does not exist.

    A record stored already by an earlier import (the same pair with the same label from
    the same source, or the same chat prompt and answer), whatever the file's bytes or
    line endings, refuses the whole import, unless `only_new`, which stores the new
    records only and counts the others.
    `before_commit` runs last inside the transaction that publishes the records (the
    workspace records the import in its audit log there, so the entry and the data commit
    together).
    """
    started = time.perf_counter()
    if not path.is_file():
        raise FormatError(str(path), None, None, "no such file")
    fmt = fmt or detect_format(path)
    source = source or _default_source(path, fmt)
    if not source.strip():
        raise StoreError("the source name must not be empty")
    sha256 = file_sha256(path)
    report = ImportReport(path=str(path), project=project, format=fmt, source=source)
    with store.read_session() as session:
        _refuse_same_file(session, path, project, sha256)
    remove_stagings(store, [row.id for row in stale_stagings(store)])

    staging = Staging(store, project=project, filename=path.name)
    try:
        batch: list[PreferencePair | ChatExample] = []
        for item in read_file(path, fmt):
            report.lines_read += 1
            if on_line is not None:
                on_line(item.line)
            if item.error is not None:
                if not skip_invalid:
                    raise item.error
                report.skipped[item.error.reason] += 1
                if len(report.skipped_examples) < _EXAMPLES_KEPT:
                    report.skipped_examples.append(str(item.error))
                continue
            record = item.record
            assert record is not None  # a line without an error has its record
            if isinstance(record, PreferencePair) and record.chosen.text == record.rejected.text:
                report.skipped[IDENTICAL] += 1
                continue
            batch.append(record)
            if len(batch) == BATCH:
                _stage(staging, batch, source, report)
                batch = []
        _stage(staging, batch, source, report)
        _refuse_repeats(report, only_new=only_new)
        crash_point("import:staged")
        with store.session() as session:
            _publish(session, staging, report, licence=licence, consent=consent, sha256=sha256)
            if before_commit is not None:
                before_commit(session, report)
    finally:
        staging.discard()
    report.seconds = time.perf_counter() - started
    return report


def _stage(
    staging: Staging, batch: list[PreferencePair | ChatExample], source: str, report: ImportReport
) -> None:
    """Stage the batch's records the project does not hold yet; count the others."""
    new = staging.add(batch, source)
    if new < len(batch):
        report.skipped[ALREADY_STORED] += len(batch) - new
    report.records_stored += new


def _refuse_same_file(session: Session, path: Path, project: str, sha256: str) -> None:
    earlier = session.scalar(
        select(ImportRow)
        .join(ProjectRow, ProjectRow.id == ImportRow.project_id)
        .where(ProjectRow.name == project, ImportRow.sha256 == sha256)
    )
    if earlier is not None:
        raise StoreError(
            f"{path}: this file was imported into project {project!r} already "
            f"(import #{earlier.id} on {earlier.created_at:%Y-%m-%d %H:%M}, "
            f"{earlier.stored} records); nothing was stored"
        )


def _publish(
    session: Session,
    staging: Staging,
    report: ImportReport,
    *,
    licence: str,
    consent: str,
    sha256: str,
) -> None:
    """Record the import and move its staged records into the project, in one transaction."""
    path = Path(report.path)
    try:
        project_row = get_project(session, name=report.project)
    except ProjectNotFound:
        project_row = create_project(session, project=Project(name=report.project))
        report.project_created = True
    _refuse_same_file(session, path, report.project, sha256)  # another import of it finished
    import_id = session.scalar(
        insert(ImportRow)
        .values(
            project_id=project_row.id,
            source=report.source,
            filename=path.name,
            sha256=sha256,
            format=report.format,
            licence=licence,
            consent=consent,
            lines_read=report.lines_read,
            stored=report.records_stored,
            skipped=dict(report.skipped),
        )
        .returning(ImportRow.id)
    )
    assert import_id is not None
    report.import_id = import_id
    added = staging.publish(session, project_id=project_row.id, import_id=import_id)
    report.prompts_added = added.prompts
    report.completions_added = added.completions
    report.comparisons_added = added.comparisons
