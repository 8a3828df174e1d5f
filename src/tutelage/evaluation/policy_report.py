"""The policy audit as `report.json` and a self-contained `report.html` (plots embedded)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from tutelage.evaluation.policy import PolicyAudit
from tutelage.evaluation.report import STYLE, png
from tutelage.evaluation.sycophancy import FormRate
from tutelage.files import write_text_whole

__all__ = ["policy_report_html", "write_policy_report"]

LABELS = {
    "opinion": "agrees with the user's stated view",
    "answer": "accuracy lost when the user suggests a wrong answer",
    "are_you_sure": "correct answers abandoned after pushback",
    "accuracy": "accuracy on factual questions",
}


def _figure(audit: PolicyAudit) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    forms = list(audit.rates)
    figure, axis = plt.subplots(figsize=(6.5, 3.4))
    series = [(audit.model, audit.rates)]
    if audit.reference_rates is not None and audit.reference is not None:
        series.append((audit.reference, audit.reference_rates))
    width = 0.8 / len(series)
    for k, (name, rates) in enumerate(series):
        values = [rates[f].rate if f in rates else 0.0 for f in forms]
        errors = [
            [_below(rates.get(f)) for f in forms],
            [_above(rates.get(f)) for f in forms],
        ]
        axis.bar(
            [i + k * width for i in range(len(forms))],
            values,
            width,
            yerr=errors,
            capsize=3,
            label=Path(name).name or name,
        )
    axis.set_xticks([i + 0.4 - width / 2 for i in range(len(forms))], forms)
    axis.axhline(0, color="#999", linewidth=0.8)
    axis.set_ylim(min(0.0, axis.get_ylim()[0]), 1)
    axis.set_ylabel("rate (95% interval)")
    axis.set_title("Sycophancy")
    axis.legend(fontsize=8)
    return png(figure)


def _below(rate: FormRate | None) -> float:
    return rate.rate - rate.low if rate is not None and rate.low is not None else 0.0


def _above(rate: FormRate | None) -> float:
    return rate.high - rate.rate if rate is not None and rate.high is not None else 0.0


def _cell(rate: FormRate | None) -> str:
    if rate is None:
        return "<td>-</td>"
    interval = (
        f" ({rate.low:.1%} to {rate.high:.1%})"
        if rate.low is not None and rate.high is not None
        else ""
    )
    return f"<td>{rate.rate:.1%}{interval}, n = {rate.n}</td>"


def policy_report_html(audit: PolicyAudit, win: dict[str, Any] | None = None) -> str:
    """Return the report page: each form's rate for the policy and the reference, and
    the policy's win rate against the reference where it was measured."""
    head = f"<th>{html.escape(audit.model)}</th>"
    if audit.reference is not None:
        head += f"<th>{html.escape(audit.reference)}</th><th>difference</th><th>p-value</th>"
    rows = []
    for form, rate in audit.rates.items():
        row = f"<tr><td>{html.escape(form)}: {html.escape(LABELS.get(form, ''))}</td>{_cell(rate)}"
        if audit.reference_rates is not None:
            row += _cell(audit.reference_rates.get(form))
            row += (
                f"<td>{rate.difference:+.1%}</td>" if rate.difference is not None else "<td>-</td>"
            )
            row += f"<td>{rate.p_value:.3g}</td>" if rate.p_value is not None else "<td>-</td>"
        rows.append(row + "</tr>")
    suites = ", ".join(f"{html.escape(s.name)} ({len(s.items)} items)" for s in audit.suites)
    opinion = audit.rates.get("opinion")
    baseline = (
        f"<p>A model the user's view does not move agrees with it {opinion.baseline:.0%} of the "
        "time on these items.</p>"
        if opinion is not None and opinion.baseline is not None
        else ""
    )
    if win is not None:
        interval = (
            f" (95% interval {win['low']:.1%} to {win['high']:.1%})"
            if win.get("low") is not None
            else ""
        )
        baseline += (
            f"<p>Win rate against the reference on {win['n']} prompts, judged by "
            f"<code>{html.escape(str(win['judge']))}</code>: {win['rate']:.1%}{interval}.</p>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Policy audit: {html.escape(audit.model)}</title><style>{STYLE}</style></head>"
        f"<body><h1>Policy audit</h1><p>Suites: {suites}</p>{baseline}"
        f"<table><tr><th>form</th>{head}</tr>{''.join(rows)}</table>"
        f'<figure><img alt="Sycophancy rates" src="data:image/png;base64,{_figure(audit)}">'
        "<figcaption>Sycophancy rates with 95% intervals</figcaption></figure></body></html>"
    )


def write_policy_report(
    out: Path, audit: PolicyAudit, summary: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write `report.json` (`summary`, the audit's by default) and `report.html` into
    `out`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    figures = summary if summary is not None else audit.summary()
    json_path, html_path = out / "report.json", out / "report.html"
    write_text_whole(json_path, json.dumps(figures, indent=2) + "\n")
    write_text_whole(html_path, policy_report_html(audit, figures.get("win_rate")))
    return json_path, html_path
