"""After a red-team prompt is stored: candidate answers for it, and items to judge them.

Runs after the expert's submit has been acknowledged (generation takes seconds and
must not hold the request, nor SQLite's single write lock, while the model runs).
"""

from __future__ import annotations

import logging

from tutelage.generation.backend import GenerationBackend
from tutelage.generation.candidates import add_candidates
from tutelage.records import TaskKind
from tutelage.store import Store
from tutelage.store.tables import ProjectRow
from tutelage.workspace.items import build_items

__all__ = ["answer_redteam_prompts"]

log = logging.getLogger(__name__)


def answer_redteam_prompts(
    store: Store, *, project_id: int, backend: GenerationBackend, n: int = 2
) -> int:
    """Generate answers for the project's prompts that lack `n`, then build their items.

    Returns how many completions were added. Failures are logged, not raised: the
    prompt itself is stored already, and an admin can run `tutelage generate` later.
    """
    with store.session() as session:
        project = session.get(ProjectRow, project_id)
        if project is None:
            return 0
        name = project.name
        kinds = tuple(TaskKind(kind) for kind in project.task_kinds if kind != "redteam")
    try:
        report = add_candidates(store, project=name, backend=backend, n=n, max_new_tokens=256)
    except Exception:  # generation back ends fail in many ways; the prompt is safe already
        log.exception("generating answers for red-team prompts of %s failed", name)
        return 0
    with store.session() as session:
        build_items(session, project_id=project_id, kinds=kinds, actor_id=None)
    return report.completions_added
