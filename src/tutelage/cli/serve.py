"""`tutelage serve`: the expert workspace over HTTP."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tutelage.cli.options import DbOption
from tutelage.store import open_store


def serve_command(
    db: DbOption = None,
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 for every interface.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes. One suits most teams; more use more cores. With SQLite "
            "they take turns to write, so extra workers pay off when cores are free.",
        ),
    ] = 1,
    access_log: Annotated[
        bool,
        typer.Option(
            help="Log every request (method, path, status). Off by default: the audit log "
            "keeps every change, and a line per request costs the server time under load.",
        ),
    ] = False,
) -> None:
    """Serve the expert workspace (pages and the JSON API under /api/v1)."""
    # Imported here so that other commands work without the server extras installed.
    import uvicorn

    from tutelage.web import ServerSettings, create_app

    settings = ServerSettings(host=host, port=port)
    if db:
        settings = settings.model_copy(update={"db": db})
    store = open_store(settings.db)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.secure_cookies:
        typer.echo(
            "note: listening beyond this machine without TUTELAGE_SECURE_COOKIES=1; "
            "put the server behind HTTPS and set it",
            err=True,
        )
    if workers > 1:
        store.close()  # each worker opens its own, from the settings passed down here
        os.environ["TUTELAGE_DB"] = settings.db
        uvicorn.run(
            "tutelage.web.app:app_from_environment",
            factory=True,
            workers=workers,
            host=host,
            port=port,
            access_log=access_log,
        )
        return
    try:
        uvicorn.run(
            create_app(store, settings, freeze_startup=True),
            host=host,
            port=port,
            access_log=access_log,
        )
    finally:
        store.close()
