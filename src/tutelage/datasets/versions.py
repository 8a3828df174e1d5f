"""Dataset versions: immutable, content-hashed snapshots of records, and their history.

A version is a folder of Parquet files (one per split) and a `manifest.json`, written
to a temporary folder and renamed into place, plus a row in `dataset_versions`. Nothing
in a version changes after it is written; checks, overrides and redactions are
appended to its history (`dataset_events`), and a redaction writes a new version.

The hash depends on content only. Each record's `record_id` is the sha256 of its
canonical content (the prompt's messages and the texts of the kind: chosen and
rejected; a completion; a completion and its scores), never of ids, projects, labels
or judgments, so the same pairs snapshotted from another project hash alike. The
version hash is the sha256 of the kind and the sorted ``record_id:split`` lines: row
order does not matter, and two versions with the same records split alike share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tutelage import __version__
from tutelage.files import crash_point, remove_leftovers, staging_path, sync_folder, sync_tree
from tutelage.settings import tutelage_home
from tutelage.store.dataset_tables import DatasetEventRow, DatasetVersionRow
from tutelage.store.tables import ProjectRow
from tutelage.workspace.errors import WorkspaceError

if TYPE_CHECKING:
    import pandas as pd

    from tutelage.store import Store

__all__ = [
    "COLUMNS",
    "KINDS",
    "SPLITS",
    "DatasetError",
    "DatasetEvent",
    "DatasetVersion",
    "datasets_root",
    "events",
    "flatten_prompt",
    "list_versions",
    "open_version",
    "prompt_key",
    "read_records",
    "record_event",
    "record_id",
    "unregistered_versions",
    "version_hash",
    "write_version",
]

KINDS = ("preference", "sft", "ratings")
SPLITS = ("train", "validation", "test")
EVENT_KINDS = ("check", "override", "redaction", "note")
_COMMON = ["record_id", "split", "prompt_key", "prompt", "prompt_text"]
COLUMNS: dict[str, list[str]] = {
    "preference": [
        *_COMMON,
        "chosen",
        "rejected",
        "label",
        "confidence",
        "method",
        "judgment_ids",
    ],
    "sft": [*_COMMON, "completion", "source"],
    "ratings": [*_COMMON, "completion", "scores"],
}
# The columns a record's content (and so its record_id) is made of, besides the prompt.
CONTENT: dict[str, list[str]] = {
    "preference": ["chosen", "rejected"],
    "sft": ["completion"],
    "ratings": ["completion", "scores"],
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


class DatasetError(WorkspaceError):
    """A dataset version cannot be found, written or used; the message says why."""


@dataclass(frozen=True)
class DatasetVersion:
    """A written version: its files are under `path`, its manifest describes them."""

    id: int
    name: str
    hash: str
    kind: str
    project: str
    path: Path
    manifest: dict[str, Any]
    parent: str | None
    created_at: datetime


@dataclass(frozen=True)
class DatasetEvent:
    """One entry of a version's history: a check, an override, a redaction or a note."""

    id: int
    kind: str
    passed: bool | None
    details: dict[str, Any]
    actor: str
    at: datetime


def datasets_root() -> Path:
    """Return where versions are written: ``TUTELAGE_DATASETS`` or ``<home>/datasets``."""
    configured = os.environ.get("TUTELAGE_DATASETS")
    return Path(configured).expanduser() if configured else tutelage_home() / "datasets"


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _messages(prompt: str) -> list[dict[str, str]]:
    """Return a prompt's messages (JSON text) reduced to role and content."""
    try:
        messages = json.loads(prompt)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"a record's prompt is not JSON text of messages: {exc}") from exc
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and "role" in m and "content" in m for m in messages
    ):
        raise DatasetError("a record's prompt must be a JSON list of {role, content} messages")
    return [{"role": str(m["role"]), "content": str(m["content"])} for m in messages]


def prompt_key(prompt: str) -> str:
    """Return the stable key of a prompt (JSON text of its messages): its sha256."""
    return _sha256(_canonical(_messages(prompt)))


def flatten_prompt(prompt: str) -> str:
    """Return a prompt's messages as "role: content" lines."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in _messages(prompt))


def record_id(kind: str, record: dict[str, Any]) -> str:
    """Return the sha256 of a record's canonical content (prompt and the kind's texts)."""
    content: dict[str, Any] = {"kind": kind, "prompt": _messages(str(record["prompt"]))}
    for column in CONTENT[kind]:
        value = record[column]
        content[column] = json.loads(value) if column == "scores" else str(value)
    return _sha256(_canonical(content))


def version_hash(kind: str, ids_and_splits: list[tuple[str, str]]) -> str:
    """Return the order-independent hash of a version's records and their splits."""
    lines = sorted(f"{rid}:{split}" for rid, split in ids_and_splits)
    return _sha256("\n".join([f"kind:{kind}", *lines]))


def _version(session: Session, row: DatasetVersionRow) -> DatasetVersion:
    project = session.get(ProjectRow, row.project_id) if row.project_id is not None else None
    parent = session.get(DatasetVersionRow, row.parent_id) if row.parent_id is not None else None
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    return DatasetVersion(
        id=row.id,
        name=row.name,
        hash=row.hash,
        kind=row.kind,
        project=project.name if project is not None else str(row.manifest.get("project", "")),
        path=Path(row.path),
        manifest=dict(row.manifest),
        parent=parent.name if parent is not None else None,
        created_at=created,
    )


def open_version(session: Session, *, ref: str) -> DatasetVersion:
    """Return the version named `ref`, or whose hash starts with `ref` (8+ hex digits)."""
    row = session.scalar(select(DatasetVersionRow).where(DatasetVersionRow.name == ref))
    if row is not None:
        return _version(session, row)
    if re.fullmatch(r"[0-9a-f]{8,64}", ref):
        rows = session.scalars(
            select(DatasetVersionRow).where(DatasetVersionRow.hash.startswith(ref))
        ).all()
        if len(rows) == 1:
            return _version(session, rows[0])
        if len(rows) > 1:
            names = ", ".join(sorted(r.name for r in rows))
            raise DatasetError(f"dataset version {ref!r} is ambiguous: it matches {names}")
    raise DatasetError(
        f"no dataset version named {ref!r} (nor with a hash starting so); "
        "see `tutelage datasets list`"
    )


def list_versions(session: Session, *, project: str | None = None) -> list[DatasetVersion]:
    """Return the versions, oldest first, of one project or of all."""
    query = select(DatasetVersionRow).order_by(DatasetVersionRow.id)
    if project is not None:
        query = query.join(ProjectRow, ProjectRow.id == DatasetVersionRow.project_id).where(
            ProjectRow.name == project
        )
    return [_version(session, row) for row in session.scalars(query)]


def read_records(version: DatasetVersion) -> pd.DataFrame:
    """Return all records of a version, train then validation then test."""
    import pandas as pd

    frames = []
    for split in SPLITS:
        path = version.path / f"{split}.parquet"
        if not path.is_file():
            raise DatasetError(
                f"dataset version {version.name!r} is missing its file {path}; "
                "was its folder moved or deleted?"
            )
        frames.append(pd.read_parquet(path))
    records = pd.concat(frames, ignore_index=True)
    return records[COLUMNS[version.kind]]


def _normalise(kind: str, records: pd.DataFrame) -> pd.DataFrame:
    """Return the records with the columns of `kind`, record_id and prompt_key recomputed."""
    import pandas as pd

    if kind not in KINDS:
        raise DatasetError(f"unknown dataset kind {kind!r}; use one of {', '.join(KINDS)}")
    needed = {"split", "prompt", *CONTENT[kind]}
    missing = sorted(needed - set(records.columns))
    if missing:
        raise DatasetError(f"{kind} records lack the column(s) {', '.join(missing)}")
    bad = sorted(set(records["split"]) - set(SPLITS))
    if bad:
        raise DatasetError(f"unknown split(s) {bad}; use {', '.join(SPLITS)}")
    frame = records.copy().reset_index(drop=True)
    defaults: dict[str, Any] = {
        "label": "",
        "confidence": 1.0,
        "method": "",
        "judgment_ids": "[]",
        "source": "",
    }
    for column in COLUMNS[kind]:
        if column not in frame.columns and column in defaults:
            frame[column] = defaults[column]
    rows = frame.to_dict("records")
    frame["record_id"] = [record_id(kind, row) for row in rows]
    frame["prompt_key"] = [prompt_key(str(row["prompt"])) for row in rows]
    frame["prompt_text"] = [flatten_prompt(str(row["prompt"])) for row in rows]
    duplicates = frame["record_id"].duplicated()
    if duplicates.any():
        raise DatasetError(
            f"{int(duplicates.sum())} record(s) repeat another record's content; "
            "a version holds each record once"
        )
    frame = frame[COLUMNS[kind]]
    for column in COLUMNS[kind]:
        if column != "confidence":
            frame[column] = frame[column].astype(str)
    if kind == "preference":
        frame["confidence"] = pd.to_numeric(frame["confidence"]).astype(float)
    return frame.sort_values(["split", "record_id"], kind="stable").reset_index(drop=True)


def _counts(kind: str, frame: pd.DataFrame) -> dict[str, Any]:
    counts: dict[str, Any] = {
        "records": len(frame),
        "prompts": int(frame["prompt_key"].nunique()),
        "by_split": {split: int((frame["split"] == split).sum()) for split in SPLITS},
    }
    if kind == "preference":
        counts["by_label"] = dict(sorted(Counter(frame["label"]).items()))
    if kind == "sft":
        counts["by_source"] = dict(sorted(Counter(frame["source"]).items()))
    return counts


def write_version(
    store: Store,
    *,
    name: str,
    kind: str,
    project: str,
    records: pd.DataFrame,
    parent: DatasetVersion | None,
    manifest_extra: dict[str, Any],
    actor: str,
) -> DatasetVersion:
    """Write `records` as a new version named `name` and register it; all or nothing.

    `records` needs `split`, `prompt` (JSON text of messages) and the kind's content
    columns; `record_id`, `prompt_key` and `prompt_text` are computed here.
    """
    if not _NAME.fullmatch(name):
        raise DatasetError(
            f"invalid version name {name!r}: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    frame = _normalise(kind, records)
    digest = version_hash(kind, list(zip(frame["record_id"], frame["split"], strict=True)))
    created_at = datetime.now(UTC)
    counts = _counts(kind, frame)
    if isinstance(manifest_extra.get("counts"), dict):
        counts = {**manifest_extra["counts"], **counts}
    manifest = {
        **manifest_extra,
        "name": name,
        "hash": digest,
        "kind": kind,
        "project": project,
        "parent": parent.name if parent is not None else None,
        "parent_hash": parent.hash if parent is not None else None,
        "counts": counts,
        "columns": COLUMNS[kind],
        "created_at": created_at.isoformat(),
        "created_by": actor,
        "tutelage_version": __version__,
    }
    root = datasets_root()
    final = root / name
    remove_leftovers(root)  # staging folders of killed snapshots
    if final.exists() and _left_by_a_killed_snapshot(store, name, final):
        shutil.rmtree(final)
    if final.exists():
        raise DatasetError(
            f"{final} exists but no version {name!r} is registered in this store; "
            "move it away or pick another name"
            if not _registered(store, name, str(final))
            else f"a dataset version named {name!r} exists already; versions never change, "
            "so pick another name"
        )
    try:
        return _register(store, name, kind, project, frame, manifest, parent, actor, final)
    except BaseException:
        # The folder is renamed into place just before the commit; if the commit then
        # fails, no row points at it and it goes too.
        if final.exists() and not _registered(store, name, str(final)):
            shutil.rmtree(final, ignore_errors=True)
        raise


def _left_by_a_killed_snapshot(store: Store, name: str, folder: Path) -> bool:
    """Whether `folder` is a version a snapshot renamed into place and was killed before
    it registered it: tutelage's manifest of that name, and no row for it. It can be
    made again, and nothing points at it; anything else there is someone's, and stays."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    ours = isinstance(manifest, dict) and manifest.get("name") == name and "hash" in manifest
    return ours and "tutelage_version" in manifest and not _registered(store, name, str(folder))


def unregistered_versions(store: Store) -> list[Path]:
    """Version folders killed snapshots left unregistered (see `tutelage db doctor`)."""
    root = datasets_root()
    if not root.is_dir():
        return []
    return [
        folder
        for folder in sorted(root.iterdir())
        if folder.is_dir()
        and not folder.name.startswith(".")
        and _left_by_a_killed_snapshot(store, folder.name, folder)
    ]


def _registered(store: Store, name: str, path: str) -> bool:
    try:
        with store.session() as session:
            return (
                session.scalar(
                    select(DatasetVersionRow.id).where(
                        DatasetVersionRow.name == name, DatasetVersionRow.path == path
                    )
                )
                is not None
            )
    except Exception:
        return True  # cannot tell: keep the files rather than lose a registered version


def _register(
    store: Store,
    name: str,
    kind: str,
    project: str,
    frame: pd.DataFrame,
    manifest: dict[str, Any],
    parent: DatasetVersion | None,
    actor: str,
    final: Path,
) -> DatasetVersion:
    root = final.parent
    digest = str(manifest["hash"])
    with store.session() as session:
        if session.scalar(select(DatasetVersionRow.id).where(DatasetVersionRow.name == name)):
            raise DatasetError(
                f"a dataset version named {name!r} exists already; versions never change, "
                "so pick another name"
            )
        project_row = session.scalar(select(ProjectRow).where(ProjectRow.name == project))
        root.mkdir(parents=True, exist_ok=True)
        staging = staging_path(final, "staging")
        staging.mkdir(mode=0o755)
        try:
            for split in SPLITS:
                part = frame[frame["split"] == split].reset_index(drop=True)
                part.to_parquet(staging / f"{split}.parquet", index=False)
            (staging / "manifest.json").write_text(
                json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n",
                encoding="utf-8",
            )
            row = DatasetVersionRow(
                name=name,
                hash=digest,
                kind=kind,
                project_id=project_row.id if project_row is not None else None,
                parent_id=parent.id if parent is not None else None,
                path=str(final),
                manifest=json.loads(json.dumps(manifest, default=str)),
                created_at=datetime.fromisoformat(str(manifest["created_at"])),
                created_by=actor,
            )
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:
                raise DatasetError(f"a dataset version named {name!r} exists already") from exc
            sync_tree(staging)
            crash_point("snapshot:staged")
            staging.rename(final)
            sync_folder(root)
            crash_point("snapshot:renamed")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        version = _version(session, row)
    return version


def record_event(
    session: Session,
    *,
    version: DatasetVersion,
    kind: str,
    passed: bool | None,
    details: dict[str, Any],
    actor: str,
) -> None:
    """Append one event to a version's history."""
    if kind not in EVENT_KINDS:
        raise DatasetError(f"unknown event kind {kind!r}; use one of {', '.join(EVENT_KINDS)}")
    session.add(
        DatasetEventRow(
            version_id=version.id,
            kind=kind,
            passed=passed,
            details=json.loads(json.dumps(details, default=str)),
            actor=actor,
        )
    )
    session.flush()


def events(session: Session, *, version: DatasetVersion) -> list[DatasetEvent]:
    """Return a version's history, oldest first."""
    rows = session.scalars(
        select(DatasetEventRow)
        .where(DatasetEventRow.version_id == version.id)
        .order_by(DatasetEventRow.id)
    )
    return [
        DatasetEvent(
            id=row.id,
            kind=row.kind,
            passed=row.passed,
            details=dict(row.details),
            actor=row.actor,
            at=row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC),
        )
        for row in rows
    ]
