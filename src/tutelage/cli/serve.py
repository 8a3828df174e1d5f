"""`tutelage serve`: the expert workspace over HTTP."""

from __future__ import annotations

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
    try:
        uvicorn.run(create_app(store, settings), host=host, port=port)
    finally:
        store.close()
