"""`tutelage serve`: the expert workspace over HTTP."""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from tutelage.cli.options import DbOption
from tutelage.store import Store, open_store

if TYPE_CHECKING:
    import uvicorn

    from tutelage.web import ServerSettings

__all__ = ["listen", "serve_command", "serve_in_background"]


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, for the server to accept on; a port that is taken is
    one clear line and exit 1, not uvicorn's traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(another server there? pass --port)",
            highlight=False,
        )
        raise typer.Exit(1) from None
    return listener


def _server(
    store: Store, settings: ServerSettings, access_log: bool, log_level: str = "info"
) -> uvicorn.Server:
    import uvicorn

    from tutelage.web import create_app

    app = create_app(store, settings, freeze_startup=True)
    return uvicorn.Server(uvicorn.Config(app, access_log=access_log, log_level=log_level))


def serve_in_background(
    store: Store, settings: ServerSettings, listener: socket.socket
) -> tuple[Any, threading.Thread]:
    """Serve in a thread of this process (the demo works meanwhile); returns the server,
    whose `should_exit` stops it, and its thread, once it accepts connections."""
    server = _server(store, settings, access_log=False, log_level="warning")  # it says itself
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:  # uvicorn says when it listens; a failed start ends the thread
        if not thread.is_alive():
            raise typer.Exit(1)
        time.sleep(0.02)
    return server, thread


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

    from tutelage.web import ServerSettings

    settings = ServerSettings(host=host, port=port)
    if db:
        settings = settings.model_copy(update={"db": db})
    listener = listen(host, port)  # before the store, so a taken port costs nothing
    store = open_store(settings.db)
    if host not in ("127.0.0.1", "localhost", "::1") and not settings.secure_cookies:
        typer.echo(
            "note: listening beyond this machine without TUTELAGE_SECURE_COOKIES=1; "
            "put the server behind HTTPS and set it",
            err=True,
        )
    if workers > 1:
        from tutelage.cli.supervisor import serve_workers

        store.close()  # each worker opens its own, from the settings passed down here
        os.environ["TUTELAGE_DB"] = settings.db
        try:
            serve_workers(listener, workers, host=host, port=port, access_log=access_log)
        finally:
            listener.close()
        return
    try:
        _server(store, settings, access_log).run(sockets=[listener])
    finally:
        listener.close()
        store.close()
