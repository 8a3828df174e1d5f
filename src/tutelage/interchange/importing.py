"""`tutelage import`: a preference or chat file into a project, all or nothing."""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from tutelage.formats import FormatError, detect_format, read_file
from tutelage.records import (
    ChatExample,
    Comparison,
    ComparisonOutcome,
    PreferencePair,
    Project,
    Provenance,
)
from tutelage.store import Store, StoreError
from tutelage.store.projects import ProjectNotFound, create_project, get_project
from tutelage.store.tables import ComparisonRow, ImportRow
from tutelage.store.writer import RecordWriter

__all__ = ["ALREADY_STORED", "IDENTICAL", "ImportReport", "import_file"]

IDENTICAL = "chosen and rejected are identical"
ALREADY_STORED = "stored already by an earlier import"
_EXAMPLES_KEPT = 5


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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Built once: it runs for every pair whose prompt and answers are all stored already.
_comparisons = ComparisonRow.__table__
_COMPARED_BEFORE = (
    select(_comparisons.c.id)
    .where(
        _comparisons.c.completion_a_id == bindparam("a_id"),
        _comparisons.c.completion_b_id == bindparam("b_id"),
        _comparisons.c.source == bindparam("source"),
        _comparisons.c.outcome == ComparisonOutcome.A.value,
        or_(_comparisons.c.import_id.is_(None), _comparisons.c.import_id != bindparam("import_id")),
    )
    .limit(1)
)


def _compared_before(session: Session, import_id: int, a_id: int, b_id: int, source: str) -> bool:
    """Whether an earlier import stored this pair with this label from this source."""
    parameters = {"a_id": a_id, "b_id": b_id, "source": source, "import_id": import_id}
    return session.connection().execute(_COMPARED_BEFORE, parameters).first() is not None


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
    """Import `path` into `project` in one transaction and return the report.

    A bad line raises `FormatError` naming file, line and field, and nothing from the
    file is stored, unless `skip_invalid`, which stores the valid records and counts
    the skipped lines by reason. Pairs whose chosen and rejected are identical are
    always skipped and counted. The project is created if it does not exist.

    A record stored already by an earlier import (the same pair with the same label from
    the same source, or the same chat prompt and answer), whatever the file's bytes or
    line endings, refuses the whole import, unless `only_new`, which stores the new
    records only and counts the others.
    `before_commit` runs last inside the import's transaction (the workspace records the
    import in its audit log there, so the entry and the data commit together).
    """
    started = time.perf_counter()
    if not path.is_file():
        raise FormatError(str(path), None, None, "no such file")
    fmt = fmt or detect_format(path)
    source = source or _default_source(path, fmt)
    if not source.strip():
        raise StoreError("the source name must not be empty")
    sha256 = _sha256(path)
    report = ImportReport(path=str(path), project=project, format=fmt, source=source)

    with store.session() as session:
        try:
            project_row = get_project(session, name=project)
        except ProjectNotFound:
            project_row = create_project(session, project=Project(name=project))
            report.project_created = True
        earlier = session.scalar(
            select(ImportRow).where(
                ImportRow.project_id == project_row.id, ImportRow.sha256 == sha256
            )
        )
        if earlier is not None:
            raise StoreError(
                f"{path}: this file was imported into project {project!r} already "
                f"(import #{earlier.id} on {earlier.created_at:%Y-%m-%d %H:%M}, "
                f"{earlier.stored} records); nothing was stored"
            )
        import_id = session.scalar(
            insert(ImportRow)
            .values(
                project_id=project_row.id,
                source=source,
                filename=path.name,
                sha256=sha256,
                format=fmt,
                licence=licence,
                consent=consent,
            )
            .returning(ImportRow.id)
        )
        assert import_id is not None
        report.import_id = import_id
        writer = RecordWriter(session, project_id=project_row.id, import_id=import_id)
        provenance = Provenance(source=source)
        prompts_here: set[int] = set()  # the chat prompts this import stored

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
            added_before = writer.prompts_added + writer.completions_added
            if isinstance(record, PreferencePair):
                if record.chosen.text == record.rejected.text:
                    report.skipped[IDENTICAL] += 1
                    continue
                prompt_id = writer.prompt_id(record.prompt)
                a_id = writer.completion_id(prompt_id, record.chosen)
                b_id = writer.completion_id(prompt_id, record.rejected)
                known = writer.prompts_added + writer.completions_added == added_before
                if known and _compared_before(session, import_id, a_id, b_id, source):
                    report.skipped[ALREADY_STORED] += 1
                    continue
                writer.add_comparison(
                    prompt_id=prompt_id,
                    a_id=a_id,
                    b_id=b_id,
                    comparison=Comparison(
                        a=record.chosen.key(),
                        b=record.rejected.key(),
                        outcome=ComparisonOutcome.A,
                        strength=record.strength,
                        provenance=provenance,
                    ),
                )
            elif isinstance(record, ChatExample):
                prompt_id = writer.prompt_id(record.prompt)
                if record.answer is not None:
                    writer.completion_id(prompt_id, record.answer)
                if writer.prompts_added + writer.completions_added > added_before:
                    prompts_here.add(prompt_id)
                elif prompt_id not in prompts_here:  # not a repeat within this file
                    report.skipped[ALREADY_STORED] += 1
                    continue
            report.records_stored += 1
        writer.flush()
        _refuse_repeats(report, only_new=only_new)

        report.prompts_added = writer.prompts_added
        report.completions_added = writer.completions_added
        report.comparisons_added = writer.comparisons_added
        session.execute(
            update(ImportRow)
            .where(ImportRow.id == import_id)
            .values(
                lines_read=report.lines_read,
                stored=report.records_stored,
                skipped=dict(report.skipped),
            )
        )
        if before_commit is not None:
            before_commit(session, report)
    report.seconds = time.perf_counter() - started
    return report
