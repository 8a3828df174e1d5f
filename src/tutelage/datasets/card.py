"""A version's data card: a datasheet as `card.md` and a self-contained `card.html`.

Sections follow "Datasheets for Datasets" (Gebru et al.): motivation, composition,
collection process, preprocessing, licence and consent, known limitations, checks and
history. Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot
global state) and inlined as PNG data: URIs in the HTML, written beside `card.md`;
the HTML makes no outside request.
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from tutelage.datasets.versions import DatasetEvent, DatasetVersion, events, read_records
from tutelage.files import write_bytes_whole
from tutelage.store import Store
from tutelage.store.tables import ProjectRow, UserRow

__all__ = ["write_card"]


@dataclass(frozen=True)
class _Plot:
    filename: str
    title: str
    png: bytes


Block = str | list[str] | _Plot


def _bar_png(labels: list[str], values: list[float], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.bar(labels, values, color="#4c72b0")
    axes.set_title(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _hist_png(series: dict[str, list[int]], title: str) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5, 3), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name, lengths in series.items():
        if lengths:
            axes.hist(lengths, bins=30, alpha=0.6, label=name)
    axes.set_xlabel("characters")
    axes.set_ylabel("records")
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _composition(version: DatasetVersion, records: pd.DataFrame) -> list[Block]:
    counts = version.manifest.get("counts", {})
    blocks: list[Block] = [
        f"{counts.get('records', len(records)):,} {version.kind} records from "
        f"{counts.get('prompts', 0):,} prompts.",
        [f"{split}: {n:,}" for split, n in counts.get("by_split", {}).items()],
    ]
    if counts.get("left_out"):
        blocks.append("Left out at snapshot:")
        blocks.append([f"{why}: {n:,}" for why, n in counts["left_out"].items()])
    by = counts.get("by_label") or counts.get("by_source")
    if by:
        blocks.append(
            _Plot(
                "labels.png",
                "Records by label" if "by_label" in counts else "Records by source",
                _bar_png(list(by), [float(v) for v in by.values()], "records by label"),
            )
        )
    texts = [c for c in ("chosen", "rejected", "completion") if c in records.columns]
    lengths = {"prompt": [len(t) for t in records["prompt_text"]]}
    lengths.update({c: [len(str(t)) for t in records[c]] for c in texts})
    blocks.append(_Plot("lengths.png", "Lengths", _hist_png(lengths, "length distribution")))
    return blocks


def _collection(store: Store, version: DatasetVersion) -> list[Block]:
    from tutelage.workspace.stats import project_stats

    judges = version.manifest.get("judges", {})
    ids = [int(e.split(":", 1)[1]) for e in judges.get("expert_ids", [])]
    with store.session() as session:
        project = session.scalar(select(ProjectRow).where(ProjectRow.name == version.project))
        expertise: dict[str, int] = {}
        for user in session.scalars(select(UserRow).where(UserRow.id.in_(ids))):
            for field in user.expertise or ["(none stated)"]:
                expertise[str(field)] = expertise.get(str(field), 0) + 1
        stats = project_stats(session, project_id=project.id) if project is not None else None
    blocks: list[Block] = [
        f"Source project: {version.project}. {judges.get('judgments', 0):,} judgments by "
        f"{judges.get('experts', 0)} experts"
        + (
            f" and the named sources {', '.join(judges['named_sources'])}"
            if judges.get("named_sources")
            else ""
        )
        + " are behind the records."
    ]
    if expertise:
        blocks.append("Experts by stated expertise:")
        blocks.append([f"{field}: {n}" for field, n in sorted(expertise.items())])
    if project is not None:
        rubric = [
            f"{c.get('name')} ({c.get('scale_min', 1)}-{c.get('scale_max', 5)})"
            + (f": {c.get('description')}" if c.get("description") else "")
            for c in project.rubric
        ]
        if rubric:
            blocks.append("Rubric:")
            blocks.append(rubric)
        if project.instructions:
            blocks.append(f"Instructions to experts: {project.instructions}")
        blocks.append(f"Pay rate: {project.pay_rate_per_hour} {project.currency} per active hour.")
    if stats is not None:
        blocks.append(
            f"Cost of the project's expert work so far: {stats.cost_so_far} {stats.currency}"
            + (
                f" ({stats.cost_per_judgment} per judgment)"
                if stats.cost_per_judgment is not None
                else ""
            )
            + "; the version uses part of it."
        )
    return blocks


def _preprocessing(version: DatasetVersion) -> list[Block]:
    manifest = version.manifest
    filters = manifest.get("filters", {})
    consensus = manifest.get("consensus")
    split = manifest.get("split", {})
    items = [
        f"minimum consensus confidence: {filters.get('min_confidence', 0)}",
        f"flagged experts left out: {'yes' if filters.get('exclude_flagged') else 'no'}"
        + (
            f" ({', '.join(filters['flagged_experts_left_out'])})"
            if filters.get("flagged_experts_left_out")
            else ""
        ),
        "excluded experts (pseudonymous): "
        + (", ".join(filters.get("excluded_experts", [])) or "none"),
        f"split: seed {split.get('seed')}, fractions {split.get('fractions')}, grouped by prompt",
    ]
    if consensus:
        items.insert(0, f"consensus: {consensus.get('method')} ({consensus.get('labels')})")
    return [items]


def _licence(version: DatasetVersion) -> list[Block]:
    section = version.manifest.get("licence", {})
    return [
        f"Licences of the sources: {', '.join(section.get('licences', [])) or 'none'}. "
        f"Commercial use: {section.get('commercial_use', 'unknown')} (the most restrictive "
        f"source decides); marked for commercial use: "
        f"{'yes' if section.get('marked_commercial') else 'no'}.",
        [
            f"{s.get('source')}: licence {s.get('licence')}; consent: "
            f"{s.get('consent') or '(none stated)'}"
            for s in section.get("sources", [])
        ],
    ]


def _limitations(version: DatasetVersion) -> list[Block]:
    counts = version.manifest.get("counts", {})
    notes = [
        "Labels are the consensus of a few experts per item; confidence is recorded per "
        "record and low-agreement items may still be wrong.",
        "Splits are by prompt and approximate the fractions (see composition).",
    ]
    if version.kind == "preference" and counts.get("left_out", {}).get("tie"):
        notes.append("Ties and both-bad items are not in a preference version.")
    if counts.get("records", 0) < 1000:
        notes.append("Small: fewer than 1,000 records.")
    return [notes]


def _checks(history: list[DatasetEvent]) -> list[Block]:
    latest: dict[str, DatasetEvent] = {}
    for event in history:
        if event.kind == "check":
            for part, value in event.details.items():
                if isinstance(value, dict) and "passed" in value:
                    latest[part] = event
            latest["(overall)"] = event
    if not latest:
        return ["This version has not been checked (`tutelage check VERSION`)."]
    lines = []
    for part, event in sorted(latest.items()):
        value = event.details.get(part) if part != "(overall)" else None
        passed = value.get("passed") if isinstance(value, dict) else event.passed
        summary = (
            value.get("summary", "")
            if isinstance(value, dict)
            else event.details.get("summary", "")
        )
        lines.append(
            f"{part}: {'passed' if passed else 'FAILED'} ({event.at:%Y-%m-%d %H:%M} UTC)"
            + (f" - {summary}" if summary else "")
        )
    blocks: list[Block] = [lines]
    overrides = [e for e in history if e.kind == "override"]
    if overrides:
        blocks.append("Overrides:")
        blocks.append(
            [
                f"{e.at:%Y-%m-%d %H:%M} UTC by {e.actor}: {e.details.get('reason')}"
                for e in overrides
            ]
        )
    return blocks


def _history(version: DatasetVersion, history: list[DatasetEvent]) -> list[Block]:
    lines = [
        f"{version.created_at:%Y-%m-%d %H:%M} UTC: written by "
        f"{version.manifest.get('created_by', '')}"
        + (f" from parent {version.parent}" if version.parent else "")
        + f" (tutelage {version.manifest.get('tutelage_version')})"
    ]
    for e in history:
        state = "" if e.passed is None else (" passed" if e.passed else " failed")
        detail = e.details.get("reason") or e.details.get("summary") or ""
        lines.append(
            f"{e.at:%Y-%m-%d %H:%M} UTC: {e.kind}{state} by {e.actor}"
            + (f": {detail}" if detail else "")
        )
    return [lines]


def _sections(store: Store, version: DatasetVersion) -> list[tuple[str, list[Block]]]:
    records = read_records(version)
    with store.session() as session:
        history = events(session, version=version)
    return [
        (
            "Motivation",
            [
                f"Expert {version.kind} data from project {version.project}, for training "
                "and evaluating language models. Written by tutelage from the project's "
                "judgments; the version never changes (hash below)."
            ],
        ),
        ("Composition", _composition(version, records)),
        ("Collection process", _collection(store, version)),
        ("Preprocessing", _preprocessing(version)),
        ("Licence and consent", _licence(version)),
        ("Known limitations", _limitations(version)),
        ("Checks", _checks(history)),
        ("History", _history(version, history)),
    ]


def _markdown(version: DatasetVersion, sections: list[tuple[str, list[Block]]]) -> str:
    lines = [f"# Data card: {version.name}", "", f"`{version.hash}` ({version.kind})", ""]
    for title, blocks in sections:
        lines += [f"## {title}", ""]
        for block in blocks:
            if isinstance(block, _Plot):
                lines += [f"![{block.title}]({block.filename})", ""]
            elif isinstance(block, list):
                lines += [f"- {item}" for item in block] + [""]
            else:
                lines += [block, ""]
    lines += ["## Manifest", "", "```json", json.dumps(version.manifest, indent=2), "```", ""]
    return "\n".join(lines)


def _html(version: DatasetVersion, sections: list[tuple[str, list[Block]]]) -> str:
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Data card: {e(version.name)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;"
        "padding:0 1rem;line-height:1.5}code,pre{background:#f4f4f4}"
        "pre{padding:.5rem;overflow:auto}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>Data card: {e(version.name)}</h1>",
        f"<p><code>{e(version.hash)}</code> ({e(version.kind)})</p>",
    ]
    for title, blocks in sections:
        parts.append(f"<h2>{e(title)}</h2>")
        for block in blocks:
            if isinstance(block, _Plot):
                data = base64.b64encode(block.png).decode("ascii")
                parts.append(f'<img alt="{e(block.title)}" src="data:image/png;base64,{data}">')
            elif isinstance(block, list):
                parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block) + "</ul>")
            else:
                parts.append(f"<p>{e(block)}</p>")
    parts += [
        "<h2>Manifest</h2>",
        f"<pre>{e(json.dumps(version.manifest, indent=2))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_card(store: Store, *, version: DatasetVersion, out: Path) -> list[Path]:
    """Write card.md (with its PNG plots) and card.html into `out`.

    Each file is written under a temporary name and renamed, so none is half-written;
    other files in `out` are left alone.
    """
    sections = _sections(store, version)
    files: dict[str, bytes] = {}
    for _, blocks in sections:
        for block in blocks:
            if isinstance(block, _Plot):
                files[block.filename] = block.png
    files["card.md"] = _markdown(version, sections).encode("utf-8")
    files["card.html"] = _html(version, sections).encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    for filename, content in files.items():
        write_bytes_whole(out / filename, content)
    return [out / "card.md", out / "card.html"]
