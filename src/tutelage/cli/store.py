"""`tutelage db ...` and `tutelage projects ...`."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tutelage.cli.options import DbOption, ProjectOption
from tutelage.records import Project
from tutelage.settings import default_db_url
from tutelage.store import open_store
from tutelage.store.engine import create_store_engine
from tutelage.store.migrate import current_revision, head_revision, upgrade
from tutelage.store.projects import (
    ProjectSummary,
    create_project,
    list_projects,
    project_summary,
)

db_app = typer.Typer(help="Create, migrate and check the store.", no_args_is_help=True)
projects_app = typer.Typer(help="Create, list and inspect projects.", no_args_is_help=True)
console = Console(soft_wrap=True)


@db_app.command("upgrade")
def upgrade_command(db: DbOption = None) -> None:
    """Create the store or migrate it to the newest schema."""
    engine = create_store_engine(db or default_db_url())
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
    shown = engine.url.render_as_string(hide_password=True)
    engine.dispose()
    if before == after:
        console.print(f"{shown} is up to date (revision {after})")
    else:
        console.print(f"{shown}: revision {before or 'empty'} -> {after}")


@db_app.command("current")
def current_command(db: DbOption = None) -> None:
    """Print the store's schema revision and the newest one this version knows."""
    engine = create_store_engine(db or default_db_url())
    revision = current_revision(engine)
    engine.dispose()
    console.print(f"store revision: {revision or 'empty'}; newest: {head_revision()}")


@db_app.command("doctor")
def doctor_command(
    folders: Annotated[
        list[Path] | None,
        typer.Argument(help="Folders you export into, to look for half-written exports too."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List, remove nothing.")] = False,
    db: DbOption = None,
) -> None:
    """Find and remove what killed commands left: snapshot staging folders, version
    folders never registered, half-written exports, the staged records of imports that
    never finished; and check the store's revision."""
    from tutelage.datasets.versions import datasets_root, unregistered_versions
    from tutelage.files import find_leftovers
    from tutelage.store.staging import remove_stagings, stale_stagings

    store = open_store(db, migrate=False)
    revision, newest = current_revision(store.engine), head_revision()
    if revision != newest:
        console.print(f"store revision {revision or 'empty'}; run `tutelage db upgrade` ({newest})")
    found = [*find_leftovers(datasets_root())]
    for folder in folders or []:
        found += find_leftovers(folder)
    unregistered = unregistered_versions(store)
    stagings = stale_stagings(store)
    verb = "would remove" if dry_run else "removed"
    for path in found:
        console.print(f"{verb} {path} (left by a killed process)", highlight=False)
    for path in unregistered:
        console.print(f"{verb} {path} (a version a killed snapshot never registered)")
    for row in stagings:
        console.print(
            f"{verb} the staged records of the import of {row.filename} into project "
            f"{row.project!r} that process {row.pid} on {row.host} started at "
            f"{row.started_at:%Y-%m-%d %H:%M} (it never finished; none of them is visible)",
            highlight=False,
        )
    if not dry_run:
        remove_stagings(store, [row.id for row in stagings])
    store.close()
    if not dry_run:
        for path in [*found, *unregistered]:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    if not found and not unregistered and not stagings:
        console.print("nothing left behind")


@projects_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(help="Project name (unique in the store).")],
    domain: Annotated[str, typer.Option(help="Domain, e.g. medicine, law.")] = "general",
    pay_rate: Annotated[str, typer.Option(help="Pay rate per hour.")] = "0",
    currency: Annotated[str, typer.Option(help="ISO currency code.")] = "USD",
    instructions: Annotated[str, typer.Option(help="Instructions shown to experts.")] = "",
    nda_file: Annotated[
        Path | None, typer.Option(help="File with the NDA text experts must accept.")
    ] = None,
    licence: Annotated[str, typer.Option(help="Licence of the project's data.")] = "unspecified",
    db: DbOption = None,
) -> None:
    """Create a project."""
    nda_text = nda_file.read_text(encoding="utf-8") if nda_file else ""
    project = Project.model_validate(
        {
            "name": name,
            "domain": domain,
            "pay_rate_per_hour": pay_rate,
            "currency": currency,
            "instructions": instructions,
            "nda_text": nda_text,
            "licence": licence,
        }
    )
    store = open_store(db)
    with store.session() as session:
        create_project(session, project=project)
    console.print(f"created project {name!r} in {store.url}")


@projects_app.command("list")
def list_command(db: DbOption = None) -> None:
    """List the projects in the store."""
    store = open_store(db)
    table = Table("name", "domain", "pay rate / h", "created")
    with store.session() as session:
        for row in list_projects(session):
            table.add_row(
                row.name,
                row.domain,
                f"{row.pay_rate_per_hour} {row.currency}",
                f"{row.created_at:%Y-%m-%d}",
            )
    console.print(table)


@projects_app.command("show")
def show_command(project: ProjectOption, db: DbOption = None) -> None:
    """Summarise what a project holds."""
    store = open_store(db)
    with store.session() as session:
        print_summary(project_summary(session, name=project))


def print_summary(summary: ProjectSummary) -> None:
    table = Table(title=f"project {summary.name!r} ({summary.domain})", show_header=False)
    table.add_row("imports", f"{summary.imports:,}")
    table.add_row("prompts", f"{summary.prompts:,}")
    table.add_row("completions", f"{summary.completions:,}")
    for kind, count in summary.judgments.items():
        table.add_row(kind, f"{count:,}")
    for outcome, count in sorted(summary.outcomes.items()):
        table.add_row(f"  outcome {outcome}", f"{count:,}")
    table.add_row(
        "prompts with < 2 completions", f"{summary.prompts_with_fewer_than_two_completions:,}"
    )
    console.print(table)
