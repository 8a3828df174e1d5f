"""Admin pages of evaluations: every `tutelage eval` run kept in the store, newest first
(of one model's weights with ?model=HASH), and each one's report as it was written."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from tutelage.evaluation.records import list_evaluations
from tutelage.store.evaluation_tables import EvaluationRow
from tutelage.store.tables import as_utc
from tutelage.web.deps import AdminActor, DbSession
from tutelage.web.pages import render
from tutelage.web.params import Id

__all__ = ["REPORT_POLICY", "router"]

router = APIRouter(include_in_schema=False)

# A report is a page of its own making (inline style, embedded images, no script): it is
# served sandboxed, able to load nothing and run nothing.
REPORT_POLICY = (
    "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _percent(value: object) -> str:
    return f"{value:.1%}" if isinstance(value, int | float) else "-"


def _headline(row: EvaluationRow) -> list[dict[str, Any]]:
    """Return one line per data set (a reward model) or per suite form (a policy)."""
    found = []
    for figures in row.results.get("data", []):
        ece = (figures.get("calibration") or {}).get("ece")
        found.append(
            {
                "source": figures.get("source", "?"),
                "n": figures.get("n"),
                "figures": f"accuracy {_percent(figures.get('accuracy'))}, longer answer wins "
                f"{_percent(figures.get('length_baseline_accuracy'))}"
                + (f", ECE {ece:.3f}" if isinstance(ece, int | float) else ""),
            }
        )
    for form, rate in (row.results.get("sycophancy") or {}).items():
        reference = rate.get("reference_rate")
        found.append(
            {
                "source": f"sycophancy: {form}",
                "n": rate.get("n"),
                "figures": f"rate {_percent(rate.get('rate'))}"
                + (f" (reference {_percent(reference)})" if reference is not None else ""),
            }
        )
    return found or [{"source": "-", "n": None, "figures": "-"}]


@router.get("/admin/evaluations")
def evaluations_page(
    request: Request, session: DbSession, actor: AdminActor, model: str | None = None
) -> HTMLResponse:
    rows = list_evaluations(session, model_hash=model[:64] if model else None)
    evaluations = [
        {
            "id": row.id,
            "kind": row.kind,
            "model": row.model,
            "model_hash": row.model_hash,
            "at": as_utc(row.created_at).strftime("%Y-%m-%d %H:%M:%S UTC"),
            "actor": row.actor,
            "data": _headline(row),
            "has_report": row.report_html is not None,
        }
        for row in rows
    ]
    context = {"evaluations": evaluations, "model": model, "done": ""}
    return render(request, "admin_evaluations.html", context, actor=actor)


@router.get("/admin/evaluations/{evaluation_id}/report")
def evaluation_report(evaluation_id: Id, session: DbSession, actor: AdminActor) -> HTMLResponse:
    report = session.scalar(
        select(EvaluationRow.report_html).where(EvaluationRow.id == evaluation_id)
    )
    if report is None:
        raise HTTPException(status_code=404, detail=f"no report of evaluation {evaluation_id}")
    return HTMLResponse(report, headers={"Content-Security-Policy": REPORT_POLICY})
