"""`tutelage db ...` and `tutelage projects ...`."""

from __future__ import annotations

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

db_app = typer.Typer(help="Create and migrate the store.", no_args_is_help=True)
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
