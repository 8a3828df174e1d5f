"""The `tutelage` command: a thin layer that parses arguments and calls the library."""

from __future__ import annotations

import sys

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from tutelage import __version__
from tutelage.cli import checks as checks_cli
from tutelage.cli import data, demo, evaluate, generate, quality, serve, store, train, users
from tutelage.cli import datasets as datasets_cli
from tutelage.evaluation.errors import EvaluationError
from tutelage.formats import FormatError
from tutelage.generation import GenerationError, ModelUnavailableError
from tutelage.generation.cli import models_app
from tutelage.store import StoreError
from tutelage.workspace.errors import WorkspaceError

__all__ = ["app", "main"]

app = typer.Typer(
    name="tutelage",
    help="Turn the judgments of paid domain experts into better language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(store.db_app, name="db")
app.add_typer(store.projects_app, name="projects")
app.add_typer(users.users_app, name="users")
app.add_typer(quality.quality_app, name="quality")
app.command("import")(data.import_command)
app.command("export")(data.export_command)
app.command("generate")(generate.generate_command)
app.command("demo")(demo.demo_command)
app.command("serve")(serve.serve_command)
app.command("snapshot")(datasets_cli.snapshot_command)
app.command("card")(datasets_cli.card_command)
app.add_typer(datasets_cli.datasets_app, name="datasets")
app.add_typer(checks_cli.evalsets_app, name="evalsets")
app.command("check")(checks_cli.check_command)
app.command("redact")(checks_cli.redact_command)
app.add_typer(train.train_app, name="train")
app.command("score")(train.score_command)
app.add_typer(evaluate.eval_app, name="eval")


app.add_typer(models_app, name="models")


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    """Run the CLI; expected failures print one clear line and exit 1, not a traceback."""
    try:
        app()
    except (
        WorkspaceError,
        FormatError,
        StoreError,
        ValidationError,
        GenerationError,
        ModelUnavailableError,
        EvaluationError,
    ) as exc:
        message = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(message)}", highlight=False
        )
        sys.exit(1)


def _describe(error: ValidationError) -> str:
    """Return a validation error as one line per field, without pydantic's links."""
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"])
        parts.append(f"field {where!r}: {detail['msg']}" if where else detail["msg"])
    return f"invalid {error.title}: " + "; ".join(parts)
