"""`tutelage snapshot`, `tutelage datasets ...` and `tutelage card`: dataset versions."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tutelage.cli.options import DbOption, ProjectOption
from tutelage.cli.progress import steps
from tutelage.datasets.versions import DatasetVersion, list_versions, open_version
from tutelage.store import open_store

datasets_app = typer.Typer(
    help="Dataset versions: list, show, diff, and the gate training passes through.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]
ByOption = Annotated[
    str | None,
    typer.Option("--by", help="Who is acting, for the version's history [default: OS user]."),
]


def _actor(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


def _summary(version: DatasetVersion) -> dict[str, Any]:
    return {
        "name": version.name,
        "hash": version.hash,
        "kind": version.kind,
        "project": version.project,
        "parent": version.parent,
        "created_at": version.created_at.isoformat(),
        "path": str(version.path),
        "counts": version.manifest.get("counts", {}),
    }


def snapshot_command(
    project: ProjectOption,
    name: Annotated[str, typer.Option("--name", help="Name of the new version.")],
    kind: Annotated[str, typer.Option("--kind", help="preference, sft or ratings.")] = "preference",
    consensus: Annotated[
        str | None,
        typer.Option(
            "--consensus",
            help="dawid-skene or majority; another method than the project's is computed "
            "now, not stored [default: the project's stored labels].",
            show_default=False,
        ),
    ] = None,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", help="Leave out labels less sure than this.")
    ] = 0.0,
    exclude_flagged: Annotated[
        bool,
        typer.Option("--exclude-flagged", help="Leave out experts the quality analysis flags."),
    ] = False,
    commercial: Annotated[
        bool, typer.Option("--commercial", help="Mark the version for commercial use.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the split.")] = 0,
    split: Annotated[
        tuple[float, float, float],
        typer.Option("--split", help="Train, validation and test fractions."),
    ] = (0.8, 0.1, 0.1),
    as_json: JsonOption = False,
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Turn a project's consensus labels (or rewrites, or ratings) into an immutable version."""
    from tutelage.datasets.snapshot import SnapshotSettings, snapshot

    settings = SnapshotSettings(
        kind=kind,
        consensus=consensus,
        min_confidence=min_confidence,
        exclude_flagged=exclude_flagged,
        commercial=commercial,
        seed=seed,
        split=split,
    )
    store = open_store(db)
    with steps("snapshot", err_console) as say:
        version = snapshot(
            store,
            project=project,
            name=name,
            settings=settings,
            actor=_actor(by),
            progress=say,
        )
    if as_json:
        typer.echo(json.dumps(version.manifest, default=str))
        return
    counts = version.manifest["counts"]
    left = ", ".join(f"{n} {why}" for why, n in counts.get("left_out", {}).items())
    console.print(
        f"version {version.name!r} ({version.kind}) {version.hash[:16]}: "
        f"{counts['records']:,} records from {counts['prompts']:,} prompts; "
        + ", ".join(f"{split} {n:,}" for split, n in counts["by_split"].items())
        + (f"; left out: {escape(left)}" if left else "")
    )
    console.print(f"written to {version.path}")


@datasets_app.command("list")
def list_command(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Only this project's versions.")
    ] = None,
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """List the dataset versions, oldest first."""
    with open_store(db).session() as session:
        versions = list_versions(session, project=project)
    if as_json:
        typer.echo(json.dumps([_summary(v) for v in versions], default=str))
        return
    table = Table("name", "hash", "kind", "project", "records", "parent", "created")
    for v in versions:
        table.add_row(
            escape(v.name),
            v.hash[:16],
            v.kind,
            escape(v.project),
            f"{v.manifest.get('counts', {}).get('records', 0):,}",
            escape(v.parent or "-"),
            f"{v.created_at:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@datasets_app.command("show")
def show_command(
    version: Annotated[str, typer.Argument(help="Version name or hash prefix.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Show a version's manifest and history."""
    from tutelage.datasets.versions import events

    with open_store(db).session() as session:
        found = open_version(session, ref=version)
        history = events(session, version=found)
    if as_json:
        payload = {
            **found.manifest,
            "path": str(found.path),
            "events": [
                {
                    "kind": e.kind,
                    "passed": e.passed,
                    "details": e.details,
                    "actor": e.actor,
                    "at": e.at.isoformat(),
                }
                for e in history
            ],
        }
        typer.echo(json.dumps(payload, default=str))
        return
    manifest = found.manifest
    counts = manifest.get("counts", {})
    console.print(f"[bold]{escape(found.name)}[/] {found.kind} {found.hash}")
    console.print(f"project {escape(found.project)}; parent {escape(found.parent or '-')}")
    console.print(f"files: {found.path}")
    console.print(f"records {counts.get('records', 0):,}, prompts {counts.get('prompts', 0):,}")
    for key in ("by_split", "by_label", "by_source", "left_out"):
        if counts.get(key):
            parts = ", ".join(f"{k} {v:,}" for k, v in counts[key].items())
            console.print(f"  {key.replace('_', ' ')}: {escape(parts)}")
    licence = manifest.get("licence", {})
    console.print(
        f"licences: {escape(', '.join(licence.get('licences', [])))}; "
        f"commercial use: {licence.get('commercial_use', 'unknown')}"
    )
    for e in history:
        state = "-" if e.passed is None else ("passed" if e.passed else "FAILED")
        reason = e.details.get("reason") or e.details.get("summary") or ""
        console.print(
            f"  {e.at:%Y-%m-%d %H:%M} {e.kind} {state} by {escape(e.actor)} {escape(str(reason))}"
        )


@datasets_app.command("diff")
def diff_command(
    a: Annotated[str, typer.Argument(help="The earlier version.")],
    b: Annotated[str, typer.Argument(help="The later version.")],
    as_json: JsonOption = False,
    db: DbOption = None,
) -> None:
    """Records added, removed and changed from version A to version B."""
    from tutelage.datasets.diff import diff_versions

    with open_store(db).session() as session:
        first = open_version(session, ref=a)
        second = open_version(session, ref=b)
    result = diff_versions(first, second)
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    console.print(
        f"{escape(first.name)} -> {escape(second.name)}: {len(result.added):,} added, "
        f"{len(result.removed):,} removed, {len(result.changed):,} changed, "
        f"{result.unchanged:,} unchanged"
    )
    for change in result.changed[:20]:
        console.print(
            f"  changed {change['record_id_a'][:12]} -> {change['record_id_b'][:12]}: "
            + ", ".join(change["fields"])
        )


@datasets_app.command("gate")
def gate_command(
    version: Annotated[str, typer.Argument(help="Version name or hash prefix.")],
    override: Annotated[
        str | None,
        typer.Option("--override", help="Use it although unchecked or failed, for this reason."),
    ] = None,
    by: ByOption = None,
    db: DbOption = None,
) -> None:
    """Exit 0 if the version may be trained on (its latest check passed, or overridden)."""
    from tutelage.datasets.gate import require_checked

    with open_store(db).session() as session:
        found = open_version(session, ref=version)
        require_checked(session, version=found, override=override, actor=_actor(by))
    if override:
        console.print(f"{found.name}: override recorded ({escape(override)})")
    else:
        console.print(f"{found.name}: latest check passed")


def card_command(
    version: Annotated[str, typer.Argument(help="Version name or hash prefix.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for card.md and card.html [default: ./NAME-card]."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Write a version's data card (datasheet) as card.md and self-contained card.html."""
    from tutelage.datasets.card import write_card

    store = open_store(db)
    with store.session() as session:
        found = open_version(session, ref=version)
    paths = write_card(store, version=found, out=out or Path(f"{found.name}-card"))
    for path in paths:
        console.print(f"wrote {path}")
