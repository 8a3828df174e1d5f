"""The reward-model audit as `report.json` and a self-contained `report.html`.

The page carries its plots as embedded PNG images and its style inline: it opens
offline, from a mail attachment or an auditor's laptop, with nothing to fetch.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tutelage.evaluation.reward import RewardAudit
from tutelage.evaluation.robustness import PERTURBATIONS
from tutelage.files import write_text_whole

__all__ = ["reward_report_html", "write_reward_report"]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { display: inline-block; margin: 0.5rem; }
.warn { color: #a40; }
"""


def png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(audits: Sequence[RewardAudit]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = []
    names = [a.source for a in audits]
    short = [Path(n).name or n for n in names]

    figure, axis = plt.subplots(figsize=(6, 3.2))
    accuracy = [a.evaluation.accuracy for a in audits]
    low = [
        a.accuracy_low if a.accuracy_low is not None else v
        for a, v in zip(audits, accuracy, strict=True)
    ]
    high = [
        a.accuracy_high if a.accuracy_high is not None else v
        for a, v in zip(audits, accuracy, strict=True)
    ]
    axis.errorbar(
        range(len(audits)),
        accuracy,
        yerr=[
            [v - lo for v, lo in zip(accuracy, low, strict=True)],
            [hi - v for v, hi in zip(accuracy, high, strict=True)],
        ],
        fmt="o",
        capsize=4,
        label="reward model (95% interval)",
    )
    axis.scatter(
        range(len(audits)),
        [a.evaluation.length_baseline_accuracy for a in audits],
        marker="x",
        color="grey",
        label="longer answer wins",
    )
    axis.axhline(0.5, color="#ccc", linewidth=1)
    axis.set_xticks(range(len(audits)), short, rotation=15)
    axis.set_ylim(0, 1)
    axis.set_ylabel("pairwise accuracy")
    axis.set_title("Accuracy per data set")
    axis.legend(fontsize=8)
    found.append(("Accuracy per data set, with bootstrap 95% intervals", png(figure)))

    figure, axis = plt.subplots(figsize=(4.5, 4.5))
    axis.plot([0, 1], [0, 1], color="#ccc", linewidth=1)
    for audit, name in zip(audits, short, strict=True):
        for calibration, style in ((audit.calibration, "-o"), (audit.calibrated, "--s")):
            if calibration is None:
                continue
            points = [(b.mean_probability, b.observed) for b in calibration.bins if b.count]
            label = (
                name
                if calibration.temperature == 1.0
                else f"{name}, T={calibration.temperature:.2f}"
            )
            axis.plot(*zip(*points, strict=True), style, markersize=4, label=label)
    axis.set_xlabel("predicted probability the first answer wins")
    axis.set_ylabel("share it won")
    axis.set_title("Reliability diagram")
    axis.legend(fontsize=8)
    found.append(
        ("Reliability diagram (10 equal-width bins; the diagonal is perfect)", png(figure))
    )

    figure, axis = plt.subplots(figsize=(6, 3.2))
    labels = [_bucket_label(b.low, b.high) for b in audits[0].length.buckets]
    for audit, name in zip(audits, short, strict=True):
        values = [b.accuracy if b.count else math.nan for b in audit.length.buckets]
        axis.plot(range(len(values)), values, "-o", markersize=4, label=name)
    axis.axhline(0.5, color="#ccc", linewidth=1)
    axis.set_xticks(range(len(labels)), labels, rotation=20, fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_xlabel("characters: chosen minus rejected")
    axis.set_ylabel("accuracy")
    axis.set_title("Accuracy by length difference")
    axis.legend(fontsize=8)
    found.append(
        ("Accuracy by length difference (left: people chose the shorter answer)", png(figure))
    )

    measured = [a for a in audits if a.robustness]
    if measured:
        figure, axis = plt.subplots(figsize=(6, 3.2))
        perturbations = [f.name for f in measured[0].robustness]
        width = 0.8 / len(measured)
        for k, (audit, name) in enumerate(zip(measured, short, strict=False)):
            rates = [f.flip_rate if f.flip_rate is not None else 0.0 for f in audit.robustness]
            axis.bar([i + k * width for i in range(len(rates))], rates, width, label=name)
        axis.set_xticks(
            [i + 0.4 - width / 2 for i in range(len(perturbations))],
            perturbations,
            rotation=20,
            fontsize=8,
        )
        axis.set_ylim(0, 1)
        axis.set_ylabel("share of correct verdicts flipped")
        axis.set_title("Robustness")
        axis.legend(fontsize=8)
        found.append(("Flip rate per perturbation", png(figure)))
    return found


def _bucket_label(low: float, high: float) -> str:
    if math.isinf(low):
        return f"< {high:g}"
    if math.isinf(high):
        return f">= {low:g}"
    return "0 (equal)" if (low, high) == (0, 1) else f"{low:g} to {high:g}"


def _number(value: float | None, percent: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _table(audits: Sequence[RewardAudit]) -> str:
    rows: list[tuple[str, list[str]]] = [
        ("pairs", [f"{a.evaluation.n:,}" for a in audits]),
        ("accuracy (ties half)", [_number(a.evaluation.accuracy) for a in audits]),
        (
            "95% interval",
            [f"{_number(a.accuracy_low)} to {_number(a.accuracy_high)}" for a in audits],
        ),
        ("longer answer wins", [_number(a.evaluation.length_baseline_accuracy) for a in audits]),
        ("ECE (10 equal-width bins)", [_number(a.calibration.ece, False) for a in audits]),
        ("ECE (equal-mass)", [_number(a.calibration.ece_equal_mass, False) for a in audits]),
        ("Brier score", [_number(a.calibration.brier, False) for a in audits]),
        (
            "ECE with saved temperature",
            [_number(a.calibrated.ece, False) if a.calibrated else "not fitted" for a in audits],
        ),
        (
            "Spearman: reward vs length",
            [_number(a.length.reward_length_spearman, False) for a in audits],
        ),
        (
            "accuracy, chosen answer shorter",
            [_number(a.length.accuracy_chosen_shorter) for a in audits],
        ),
        (
            "length-controlled accuracy",
            [_number(a.length.length_controlled_accuracy) for a in audits],
        ),
        ("ensemble spread AUROC", [_number(a.spread_auroc, False) for a in audits]),
    ]
    names = sorted({f.name for a in audits for f in a.robustness}, key=list(PERTURBATIONS).index)
    for name in names:
        rows.append(
            (
                f"flip rate: {name} ({PERTURBATIONS[name].side})",
                [
                    _number(next((f.flip_rate for f in a.robustness if f.name == name), None))
                    for a in audits
                ],
            )
        )
    head = "".join(f"<th>{html.escape(a.source)}</th>" for a in audits)
    body = "".join(
        f"<tr><td>{html.escape(label)}</td>"
        + "".join(f"<td>{html.escape(v)}</td>" for v in values)
        + "</tr>"
        for label, values in rows
    )
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _groups(audits: Sequence[RewardAudit]) -> str:
    parts = []
    for audit in audits:
        if not audit.groups:
            continue
        rows = "".join(
            f"<tr><td>{html.escape(g.group)}</td><td>{html.escape(g.value)}</td>"
            f"<td>{g.n:,}</td><td>{_number(g.accuracy)}</td></tr>"
            for g in audit.groups
        )
        parts.append(
            f"<h3>{html.escape(audit.source)}</h3><table><tr><th>group</th><th>value</th>"
            f"<th>pairs</th><th>accuracy</th></tr>{rows}</table>"
        )
    return "<h2>Accuracy by group</h2>" + "".join(parts) if parts else ""


def reward_report_html(model: str, audits: Sequence[RewardAudit]) -> str:
    """Return the report page: a table of figures per data set, side by side, and plots."""
    warnings = "".join(
        f'<p class="warn">{html.escape(a.source)}: only {a.evaluation.n} pairs; the interval '
        "is wide and the verdict weak.</p>"
        for a in audits
        if a.evaluation.n < 100
    )
    figures = "".join(
        f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, png in _figures(audits)
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>Reward model audit: {html.escape(model)}</title><style>{STYLE}</style></head>"
        f"<body><h1>Reward model audit</h1><p>Model: <code>{html.escape(model)}</code></p>"
        f"{warnings}{_table(audits)}{figures}{_groups(audits)}</body></html>"
    )


def write_reward_report(
    out: Path, model: str, audits: Sequence[RewardAudit], extra: dict[str, Any] | None = None
) -> tuple[Path, Path]:
    """Write `report.json` and `report.html` into `out`; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    document = {"model": model, "data": [a.summary() for a in audits], **(extra or {})}
    json_path, html_path = out / "report.json", out / "report.html"
    write_text_whole(json_path, json.dumps(document, indent=2) + "\n")
    write_text_whole(html_path, reward_report_html(model, audits))
    return json_path, html_path
