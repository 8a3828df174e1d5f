"""`tutelage evalsets ...`, `tutelage check` and `tutelage redact`: checks of versions."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tutelage.cli.options import DbOption
from tutelage.cli.progress import steps
from tutelage.datasets.contamination import OverlapSettings
from tutelage.store import open_store

evalsets_app = typer.Typer(
    help="Evaluation sets that versions are checked against for contamination.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
_DEFAULTS = OverlapSettings()

ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who is acting, for the version's history [default: OS user]."),
]


def _actor(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


@evalsets_app.command("add")
def evalsets_add_command(
    name: Annotated[str, typer.Argument(help="Name of the eval set.")],
    file: Annotated[Path, typer.Argument(help="JSONL, JSONL.gz or Parquet file.")],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="trl, trl-text, hh-rlhf or chat [default: detected]."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Register an evaluation set from any file `tutelage import` reads."""
    from tutelage.datasets.evalsets import register_eval_set

    registered = register_eval_set(open_store(db), name=name, path=file, fmt=fmt)
    console.print(
        f"registered eval set {registered.name!r}: {registered.count:,} items "
        f"({registered.format}, {registered.filename})",
        markup=False,
        highlight=False,
    )


@evalsets_app.command("list")
def evalsets_list_command(db: DbOption = None) -> None:
    """List the registered evaluation sets."""
    from tutelage.datasets.evalsets import list_eval_sets

    with open_store(db).session() as session:
        sets = list_eval_sets(session)
    if not sets:
        console.print("no eval sets; register one with `tutelage evalsets add NAME FILE`")
        return
    table = Table("name", "items", "format", "file", "sha256", "registered")
    for s in sets:
        table.add_row(
            escape(s.name),
            f"{s.count:,}",
            s.format,
            escape(s.filename),
            s.sha256[:12],
            f"{s.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


def check_command(
    version: Annotated[str, typer.Argument(help="Version name or hash prefix.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    commercial: Annotated[
        bool, typer.Option("--commercial", help="Check the licence for commercial use.")
    ] = False,
    near_threshold: Annotated[
        float,
        typer.Option(
            "--near-threshold", min=0.01, max=1.0, help="Least Jaccard that is a near duplicate."
        ),
    ] = _DEFAULTS.near_threshold,
    shingle_size: Annotated[
        int, typer.Option("--shingle-size", min=1, help="Words per shingle.")
    ] = _DEFAULTS.shingle_size,
    min_words: Annotated[
        int, typer.Option("--min-words", min=1, help="Shorter texts are not compared.")
    ] = _DEFAULTS.min_words,
    num_perm: Annotated[
        int, typer.Option("--num-perm", min=2, help="MinHash permutations.")
    ] = _DEFAULTS.num_perm,
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Check a version for contamination, leakage, personal data and licence; exit 1 if failed."""
    from tutelage.datasets.checks import CheckSettings, run_checks
    from tutelage.datasets.versions import open_version

    settings = CheckSettings(
        overlap=OverlapSettings(
            near_threshold=near_threshold,
            shingle_size=shingle_size,
            min_words=max(min_words, shingle_size),
            num_perm=num_perm,
        ),
        commercial=commercial,
    )
    store = open_store(db)
    with store.session() as session:
        found = open_version(session, ref=version)
    with steps("checking", err_console) as say:
        report = run_checks(
            store,
            version=found,
            settings=settings,
            actor=_actor(by),
            progress=say,
        )
    if as_json:
        typer.echo(json.dumps(report.to_json()))
    else:
        state = "[green]passed[/]" if report.passed else "[bold red]failed[/]"
        console.print(f"check of {escape(report.version)}: {state}")
        for reason in report.reasons:
            console.print(f"  {escape(reason)}", highlight=False)
        summary = report.to_json()
        console.print(
            f"  contamination {len(report.contamination)}, leakage {len(report.leakage)}, "
            f"personal data {len(report.pii)} {summary['pii_counts']}, licence "
            f"{'passed' if report.licence['passed'] else 'failed'}; "
            f"{len(report.eval_sets)} eval set(s)",
            markup=False,
            highlight=False,
        )
        for hit in report.contamination[:20]:
            console.print(
                f"  {hit['eval_set']}[{hit['eval_index']}] {hit['eval_field']} ~ record "
                f"{hit['record_id'][:12]} {hit['field']}: {hit['similarity']:.2f}",
                markup=False,
                highlight=False,
            )
        for hit in report.leakage[:20]:
            console.print(
                f"  leak: train {hit['record_id'][:12]} ~ {hit['other_split']} "
                f"{hit['other_record_id'][:12]}: {hit['similarity']:.2f}",
                markup=False,
                highlight=False,
            )
    if not report.passed:
        raise typer.Exit(1)


def redact_command(
    version: Annotated[str, typer.Argument(help="Version name or hash prefix.")],
    name: Annotated[str, typer.Option("--name", help="Name of the new, redacted version.")],
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Write a new version with personal data replaced by placeholders such as [EMAIL]."""
    from tutelage.datasets.redaction import redact_version
    from tutelage.datasets.versions import open_version

    store = open_store(db)
    with store.session() as session:
        found = open_version(session, ref=version)
    redacted = redact_version(store, version=found, name=name, actor=_actor(by))
    section = redacted.manifest["redaction"]
    replaced = ", ".join(f"{n} {kind}" for kind, n in section["replaced"].items()) or "nothing"
    console.print(
        f"wrote {redacted.name} ({redacted.hash[:12]}) from {found.name}: replaced {replaced} "
        f"in {section['records_changed']} record(s)",
        markup=False,
        highlight=False,
    )
