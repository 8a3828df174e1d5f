"""Options that every command shares."""

from __future__ import annotations

from typing import Annotated

import typer

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="TUTELAGE_DB",
        help="Store URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
        "[default: ~/.tutelage/tutelage.db]",
        show_default=False,
    ),
]
ProjectOption = Annotated[str, typer.Option("--project", "-p", help="Project name.")]
