"""`tutelage models`: list the bundled models and prepare them for use."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tutelage.generation.bundled import (
    DEFAULT_MODEL,
    ModelUnavailableError,
    bundled_models,
    prepare_model,
)

__all__ = ["models_app"]

models_app = typer.Typer(
    name="models",
    help="List the bundled models and prepare them for use.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(1)


@models_app.command("prepare")
def prepare_command(
    name: Annotated[str, typer.Argument(help="Bundled model to prepare.")] = DEFAULT_MODEL,
    force: Annotated[
        bool, typer.Option("--force", help="Convert again even if a verified copy exists.")
    ] = False,
) -> None:
    """Convert a bundled model once into a folder transformers loads as-is."""
    try:
        preparation = prepare_model(name, force=force)
    except ModelUnavailableError as error:
        raise _fail(str(error)) from None
    state = f"prepared ({preparation.reason})" if preparation.converted else preparation.reason
    Console().print(f"{name}: {state}\n{preparation.path}", highlight=False, soft_wrap=True)


@models_app.command("list")
def list_command() -> None:
    """Show every bundled model, its size and licence, and whether it is prepared."""
    models = bundled_models()
    table = Table()
    for column in ("name", "kind", "parameters", "licence", "prepared"):
        table.add_column(column, no_wrap=True)
    table.columns[2].justify = "right"
    for model in models:
        table.add_row(
            model.name,
            model.kind,
            f"{model.parameters / 1e6:.1f}M",
            model.licence,
            "yes" if model.prepared else "no",
        )
    console = Console()
    console.print(table)
    # Paths go below the table: inside it they would be folded into unreadable columns.
    for model in models:
        where = str(model.path) if model.path else f"run `tutelage models prepare {model.name}`"
        console.print(f"{model.name}: {where}", highlight=False, soft_wrap=True)
