"""Evaluations kept in the store: what was evaluated, on what, and what came out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tutelage.files import file_sha256
from tutelage.store import Store
from tutelage.store.evaluation_tables import EvaluationRow

__all__ = ["list_evaluations", "model_fingerprint", "record_evaluation"]

WEIGHTS = ("*.safetensors", "*.bin", "*.gguf")


def model_fingerprint(model_dir: str | Path) -> str:
    """Return a sha256 over the sha256 of every weight file under `model_dir` (ensemble
    members included), each named by its path within the folder."""
    folder = Path(model_dir)
    files = sorted({p for pattern in WEIGHTS for p in folder.rglob(pattern) if p.is_file()})
    if not files:
        raise ValueError(f"{folder} holds no weight files ({', '.join(WEIGHTS)})")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}:{file_sha256(path)}\n".encode())
    return digest.hexdigest()


def _run_config_hash(model_dir: Path) -> str | None:
    run = model_dir / "run.json"
    if not run.is_file():
        return None
    try:
        found = json.loads(run.read_text(encoding="utf-8")).get("config_hash")
    except (ValueError, AttributeError):
        return None
    return str(found) if found else None


def record_evaluation(
    store: Store,
    *,
    kind: str,
    model_dir: str | Path,
    data: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    results: dict[str, Any],
    report_html: str | None,
    actor: str,
) -> int:
    """Store one evaluation in one transaction and return its id.

    `model_dir` is a model folder, or the ``URL#model`` of a model behind a server,
    whose weights cannot be hashed: its fingerprint is the sha256 of the name.
    """
    served = str(model_dir).startswith(("http://", "https://"))
    folder = Path(model_dir)
    row = EvaluationRow(
        kind=kind,
        model=str(model_dir) if served else str(folder.resolve()),
        model_hash=(
            hashlib.sha256(str(model_dir).encode()).hexdigest()
            if served
            else model_fingerprint(folder)
        ),
        run_config_hash=None if served else _run_config_hash(folder),
        data=list(data),
        settings=settings,
        results=results,
        report_html=report_html,
        actor=actor,
    )
    with store.session() as session:
        session.add(row)
        session.flush()
        return int(row.id)


def list_evaluations(
    session: Session, *, model_hash: str | None = None, limit: int = 200
) -> list[EvaluationRow]:
    """Return the newest evaluations first (of one model's weights, if given)."""
    query = select(EvaluationRow).order_by(EvaluationRow.id.desc()).limit(limit)
    if model_hash is not None:
        query = query.where(EvaluationRow.model_hash == model_hash)
    return list(session.scalars(query))
