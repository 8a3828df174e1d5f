"""`tutelage import` and `tutelage export`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tutelage.cli.options import DbOption, ProjectOption
from tutelage.formats import FORMATS
from tutelage.interchange import export_project, import_file
from tutelage.store import open_store

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

FormatOption = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        help=f"One of: {', '.join(FORMATS)}. Detected from the content if omitted.",
    ),
]


def import_command(
    file: Annotated[Path, typer.Argument(help="JSONL, JSONL.gz or Parquet file.")],
    project: ProjectOption,
    fmt: FormatOption = None,
    source: Annotated[
        str | None,
        typer.Option(help="Name the judgments are attributed to [default: hh-rlhf or file name]."),
    ] = None,
    licence: Annotated[str, typer.Option(help="Licence of the imported data.")] = "unspecified",
    consent: Annotated[
        str, typer.Option(help="What the people behind the data agreed to (shown in cards).")
    ] = "",
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Store the valid records, report the rest.")
    ] = False,
    only_new: Annotated[
        bool,
        typer.Option(
            "--only-new", help="Store only records no earlier import stored (e.g. a grown file)."
        ),
    ] = False,
    db: DbOption = None,
) -> None:
    """Import preference pairs or chat prompts into a project (all or nothing)."""
    store = open_store(db)
    with Progress(
        SpinnerColumn(),
        TextColumn("importing {task.description}: line {task.completed:,}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task(file.name, total=None)
        report = import_file(
            store,
            path=file,
            project=project,
            fmt=fmt,
            source=source,
            licence=licence,
            consent=consent,
            skip_invalid=skip_invalid,
            only_new=only_new,
            on_line=lambda line: progress.update(task, completed=line),
        )
    if report.project_created:
        console.print(f"created project {project!r}")
    console.print(
        f"{file}: {report.lines_read:,} lines read as {report.format!r}, "
        f"{report.records_stored:,} stored, {report.skipped_total:,} skipped "
        f"({report.seconds:.1f} s; source {report.source!r}, import #{report.import_id})"
    )
    console.print(
        f"  added {report.prompts_added:,} prompts, {report.completions_added:,} completions, "
        f"{report.comparisons_added:,} comparisons to project {project!r}"
    )
    for reason, count in report.skipped.most_common():
        console.print(f"  skipped {count:,}: {reason}")
    for example in report.skipped_examples:
        console.print(f"    e.g. {example}", highlight=False, markup=False)


def export_command(
    project: ProjectOption,
    fmt: Annotated[str, typer.Option("--format", "-f", help=f"One of: {', '.join(FORMATS)}.")],
    out: Annotated[
        Path,
        typer.Option(help="Output: .jsonl, .jsonl.gz, .parquet, or a folder (datasets)."),
    ],
    container: Annotated[
        str | None,
        typer.Option(help="jsonl, jsonl.gz, parquet or hf; from --out's suffix if omitted."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Export a project's comparisons as preference data, or its prompts as chat JSONL."""
    store = open_store(db)
    report = export_project(store, project=project, fmt=fmt, out=out, container=container)
    console.print(f"wrote {report.written:,} records as {fmt!r} ({report.container}) to {out}")
    for reason, count in report.left_out.most_common():
        console.print(f"  left out {count:,} {reason}")
