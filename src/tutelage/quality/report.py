"""The quality report of a project: one JSON object, and an HTML page with PNG charts.

The page is self-contained: styles inline, images as PNG files beside it, nothing
loaded from anywhere else, every name and note escaped.
"""

from __future__ import annotations

import html
import io
import json
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tutelage.quality.load import ProjectJudgments
from tutelage.quality.persist import ProjectQuality

if TYPE_CHECKING:  # the statistics stack loads only when a project is analysed
    from tutelage.quality.agreement import Statistic
    from tutelage.quality.consensus import ConsensusLabel

__all__ = [
    "HEATMAP",
    "TRUST_CHART",
    "consensus_summary",
    "heatmap_png",
    "report_html",
    "report_json",
    "trust_png",
    "units_text",
    "write_report",
]

HEATMAP = "agreement.png"
TRUST_CHART = "trust.png"


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as None, numpy scalars as Python ones, recursively."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def units_text(items: int, pairs: int) -> str:
    """What the comparisons judged, in words: items, and imported pairs no item shows."""
    if not pairs:
        return f"{items:,} items"
    alone = f"{pairs:,} imported pairs with no workspace item"
    return f"{items:,} items and {alone}" if items else alone


def _units(judgments: ProjectJudgments) -> tuple[int, int]:
    """How many items, and how many pairs with no item, the comparisons judged."""
    units = judgments.comparisons["item"].unique()
    pairs = int((units < 0).sum()) if len(units) else 0
    return len(units) - pairs, pairs


def _pair_units(labels: list[dict[str, Any]], pairs: dict[int, tuple[int, int]]) -> None:
    """Name each pair unit by its completions (`item` None, `pair` [a, b]) in place."""
    for label in labels:
        unit = label.get("item")
        if isinstance(unit, int) and unit < 0:
            label["item"] = None
            label["pair"] = list(pairs[unit])


def _distribution(labels: Iterable[ConsensusLabel]) -> dict[str, int]:
    return dict(Counter(label.label for label in labels).most_common())


def consensus_summary(quality: ProjectQuality) -> dict[str, Any]:
    """How the methods labelled the items, how sure they were, and where they differ."""
    analysis = quality.analysis
    majority = {c.item: c.label for c in analysis.majority}
    dawid_skene = {c.item: c.label for c in analysis.dawid_skene}
    shared = set(majority) & set(dawid_skene)
    threshold = quality.judgments.adjudication_threshold
    methods = {}
    for name, labels in (
        ("majority", analysis.majority),
        ("dawid_skene", analysis.dawid_skene),
        ("consensus", analysis.consensus),
    ):
        confidence = [c.confidence for c in labels]
        methods[name] = {
            "items": len(labels),
            "labels": _distribution(labels),
            "mean_confidence": float(np.mean(confidence)) if confidence else None,
        }
    return {
        "method": analysis.method,
        "methods": methods,
        "majority_vs_dawid_skene": {
            "items": len(shared),
            "same_label": (
                sum(majority[i] == dawid_skene[i] for i in shared) / len(shared) if shared else None
            ),
        },
        "adjudicated": sum(c.method == "adjudication" for c in analysis.consensus),
        "adjudication_threshold": threshold,
        "below_threshold": len(analysis.low_agreement_items(threshold)),
    }


def report_json(quality: ProjectQuality) -> dict[str, Any]:
    """The whole report as one JSON-ready object (no NaN: None)."""
    judgments = quality.judgments
    items, pairs = _units(judgments)
    report: dict[str, Any] = _finite(
        {
            "project": judgments.project,
            "computed_at": quality.computed_at.isoformat(),
            "method": quality.analysis.method,
            "judgments": {
                "comparisons": len(judgments.comparisons),
                "items": items,
                "pairs_without_item": pairs,
                "scores": len(judgments.scores),
                "rankings": len(judgments.rankings),
                "workers": len(judgments.names),
                "excluded": sorted(judgments.excluded),
                "left_out": judgments.left_out,
            },
            "names": judgments.names,
            "consensus_summary": consensus_summary(quality),
            "stored_consensus_labels": quality.stored,
            "seconds": quality.seconds,
            **quality.analysis.to_json(),
            "bias_by_group": [asdict(b) for b in quality.bias],
            "drift": [{**asdict(d), "drifting": d.drifting} for d in quality.drift],
        }
    )
    for method in ("consensus", "majority", "dawid_skene"):
        _pair_units(report[method], judgments.pairs)
    return report


def _png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def heatmap_png(matrix: pd.DataFrame, names: dict[str, str]) -> bytes | None:
    """A heatmap of pairwise percent agreement (worker x worker), or None if there is none."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot state

    if matrix.empty or not np.isfinite(matrix.to_numpy(dtype=float)).any():
        return None
    labels = [names.get(str(w), str(w)) for w in matrix.index]
    size = min(2.0 + 0.32 * len(labels), 24.0)
    figure = Figure(figsize=(size + 1.5, size))
    axes = figure.add_subplot()
    values = np.ma.masked_invalid(matrix.to_numpy(dtype=float))
    image = axes.imshow(values, vmin=0.0, vmax=1.0, cmap="viridis")
    font = max(4.0, min(9.0, 240.0 / max(len(labels), 1)))
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=font)
    axes.set_yticks(range(len(labels)), labels, fontsize=font)
    axes.set_title("Pairwise agreement (share of shared items; blank: too few shared)")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    return _png(figure)


def trust_png(quality: ProjectQuality) -> bytes | None:
    """A bar chart of each expert's trust, flagged experts in red, or None without experts."""
    from matplotlib.figure import Figure

    experts = sorted(quality.analysis.experts, key=lambda e: e.trust)
    if not experts:
        return None
    flagged = {flag.worker for flag in quality.analysis.flags}
    names = quality.judgments.names
    figure = Figure(figsize=(7.0, max(2.0, 0.25 * len(experts) + 1.0)))
    axes = figure.add_subplot()
    colours = ["#c0392b" if e.worker in flagged else "#2e86c1" for e in experts]
    axes.barh(
        [names.get(e.worker, e.worker) for e in experts], [e.trust for e in experts], color=colours
    )
    axes.set_xlim(0, 1)
    axes.set_xlabel("trust (red: flagged)")
    axes.tick_params(axis="y", labelsize=max(4.0, min(9.0, 300.0 / len(experts))))
    return _png(figure)


def _number(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "&ndash;"
    return f"{value:.{digits}f}"


def _table(head: list[str], rows: Iterable[list[str]]) -> str:
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{body}</tbody></table>"


def _statistic_row(name: str, statistic: Statistic) -> list[str]:
    interval = (
        f"{_number(statistic.ci_low)} &ndash; {_number(statistic.ci_high)}"
        if statistic.ci_low is not None and statistic.ci_high is not None
        else "&ndash;"
    )
    value = (
        _number(statistic.value) if statistic.value is not None else "<strong>undefined</strong>"
    )
    return [
        html.escape(name),
        value,
        interval,
        f"{statistic.n_units:,}",
        html.escape(statistic.note or ""),
    ]


_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } .flag { color: #a93226; } .muted { color: #777; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def report_html(quality: ProjectQuality, *, images: dict[str, str]) -> str:
    """The report page; `images` maps HEATMAP / TRUST_CHART to the `src` to use for each."""
    analysis = quality.analysis
    judgments = quality.judgments
    names = judgments.names
    summary = consensus_summary(quality)

    def name(worker: str) -> str:
        return html.escape(names.get(worker, worker))

    parts = [
        f"<h1>Quality of project {html.escape(judgments.project)}</h1>",
        f"<p class=muted>Computed {quality.computed_at:%Y-%m-%d %H:%M:%S} UTC from "
        f"{len(judgments.comparisons):,} comparisons on "
        f"{html.escape(units_text(*_units(judgments)))} by {len(names):,} "
        f"{'judge' if len(names) == 1 else 'judges'}; "
        f"consensus method <strong>{html.escape(analysis.method)}</strong>.</p>",
    ]
    if judgments.left_out:
        parts.append(
            "<p class=muted>Left out: "
            + "; ".join(
                f"{count:,} {html.escape(why)}" for why, count in judgments.left_out.items()
            )
            + ".</p>"
        )
    if judgments.excluded:
        parts.append(
            "<p>Excluded experts (their judgments do not count): "
            + ", ".join(name(w) for w in sorted(judgments.excluded))
            + ".</p>"
        )
    parts.append("<h2>Agreement</h2>")
    parts.append(
        _table(
            ["statistic", "value", "95% interval", "units", "note"],
            (_statistic_row(k, s) for k, s in analysis.agreement.overall.items()),
        )
    )
    if HEATMAP in images:
        parts.append(f'<p><img src="{html.escape(images[HEATMAP])}" alt="pairwise agreement"></p>')
    else:
        parts.append("<p class=muted>No pair of experts shares enough items for a heatmap.</p>")
    pairs = sorted(analysis.agreement.pairwise, key=lambda p: -p.shared)[:50]
    if pairs:
        parts.append("<h3>Pairs of experts (most shared items first, up to 50)</h3>")
        parts.append(
            _table(
                ["expert", "expert", "shared items", "agreement", "Cohen's kappa"],
                (
                    [
                        name(p.worker_a),
                        name(p.worker_b),
                        f"{p.shared:,}",
                        _number(p.percent_agreement),
                        _number(p.cohen_kappa),
                    ]
                    for p in pairs
                ),
            )
        )
    parts.append("<h2>Consensus</h2>")
    methods = summary["methods"]
    parts.append(
        _table(
            ["method", "items", "labels", "mean confidence"],
            (
                [
                    html.escape(method),
                    f"{m['items']:,}",
                    html.escape(", ".join(f"{k} {v:,}" for k, v in m["labels"].items())),
                    _number(m["mean_confidence"]),
                ]
                for method, m in methods.items()
            ),
        )
    )
    versus = summary["majority_vs_dawid_skene"]
    parts.append(
        f"<p>Majority vote and Dawid&ndash;Skene give the same label on "
        f"{_number(versus['same_label'])} of {versus['items']:,} items. "
        f"{summary['adjudicated']:,} items adjudicated; {summary['below_threshold']:,} items "
        f"below the adjudication threshold ({summary['adjudication_threshold']:.2f}) await "
        f"a reviewer.</p>"
    )
    parts.append("<h2>Experts</h2>")
    parts.append(
        _table(
            [
                "expert",
                "judgments",
                "excluded",
                "gold accuracy",
                "agrees with consensus",
                "median s",
                "speed vs project",
                "A chosen (swapped)",
                "p (position)",
                "straight-lining",
                "trust",
                "why",
            ],
            (
                [
                    name(e.worker),
                    f"{e.judgments:,}",
                    "yes" if e.excluded else "",
                    _number(e.gold_accuracy),
                    _number(e.consensus_agreement),
                    _number(e.median_seconds, 1),
                    _number(e.speed_ratio, 2),
                    _number(e.position_a_rate),
                    _number(e.position_p_value, 4),
                    _number(e.straightlining),
                    f"<strong>{_number(e.trust, 2)}</strong>",
                    "<br>".join(html.escape(r) for r in e.reasons),
                ]
                for e in sorted(analysis.experts, key=lambda e: e.trust)
            ),
        )
    )
    if TRUST_CHART in images:
        parts.append(
            f'<p><img src="{html.escape(images[TRUST_CHART])}" alt="trust per expert"></p>'
        )
    parts.append("<h2>Flags</h2>")
    if analysis.flags:
        parts.append(
            _table(
                ["expert", "flag", "evidence"],
                (
                    [
                        name(f.worker),
                        f"<span class=flag>{html.escape(f.kind)}</span>",
                        html.escape(f.evidence),
                    ]
                    for f in analysis.flags
                ),
            )
        )
    else:
        parts.append("<p>No expert is flagged.</p>")
    parts.extend(_bias_parts(quality, name))
    body = "\n".join(parts)
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>Quality: {html.escape(judgments.project)}</title>"
        f"<style>{_STYLE}</style></head><body>\n{body}\n</body></html>\n"
    )


def _bias_parts(quality: ProjectQuality, name: Any) -> list[str]:
    parts = ["<h2>Bias by expert group</h2>"]
    if quality.bias:
        parts.append(
            "<p>Of each group's decisive choices where the feature told the two answers "
            "apart, the share that went its way, against the other experts' share "
            "(Fisher's exact test; Cohen's h: 0.2 small, 0.5 medium, 0.8 large).</p>"
        )
        parts.append(
            _table(
                ["expertise", "prefers the", "choices", "share", "others", "Cohen's h", "p"],
                (
                    [
                        html.escape(b.group),
                        html.escape(b.feature),
                        str(b.choices),
                        f"{b.share:.1%}",
                        f"{b.others:.1%} of {b.others_choices}",
                        _number(b.effect_h, 2),
                        _number(b.p_value),
                    ]
                    for b in quality.bias
                ),
            )
        )
    else:
        parts.append(
            "<p>Nothing to compare: no two groups of experts (by expertise tag) with five "
            "or more decisive choices each.</p>"
        )
    parts.append("<h2>Drift</h2>")
    if quality.drift:
        parts.append(
            _table(
                ["expert", "judgments", "agreement, first half", "second half", "p", ""],
                (
                    [
                        name(d.worker),
                        str(d.judgments),
                        f"{d.first_half:.1%}",
                        f"{d.second_half:.1%}",
                        _number(d.p_value),
                        "<span class=flag>drifting</span>" if d.drifting else "",
                    ]
                    for d in quality.drift
                ),
            )
        )
    else:
        parts.append("<p>No expert has the 40 judgments needed to tell drift from noise.</p>")
    return parts


def write_report(quality: ProjectQuality, out: Path) -> list[Path]:
    """Write report.html, report.json and the PNG charts into the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    images = {}
    for filename, png in (
        (HEATMAP, heatmap_png(quality.analysis.agreement.matrix, quality.judgments.names)),
        (TRUST_CHART, trust_png(quality)),
    ):
        path = out / filename
        if png is None:
            path.unlink(missing_ok=True)  # a stale chart of an earlier run would mislead
            continue
        path.write_bytes(png)
        images[filename] = filename
        written.append(path)
    page = out / "report.html"
    page.write_text(report_html(quality, images=images), encoding="utf-8")
    data = out / "report.json"
    data.write_text(json.dumps(report_json(quality), indent=1, allow_nan=False), encoding="utf-8")
    return [page, data, *written]
