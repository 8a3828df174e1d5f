"""The web application: JSON API under /api/v1, server-rendered pages, our own static files."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from tutelage import __version__
from tutelage.store import Store, open_store
from tutelage.web.errors import install_error_handlers
from tutelage.web.headers import SecurityHeadersMiddleware
from tutelage.web.input_checks import refuse_unstorable_input
from tutelage.web.openapi import install_openapi
from tutelage.web.pages import STATIC_DIR
from tutelage.web.routes import (
    access_api,
    account_pages,
    admin_api,
    admin_pages,
    auth_api,
    auth_pages,
    dataset_pages,
    evaluation_pages,
    quality_api,
    quality_pages,
    security_api,
    security_pages,
    work_api,
    work_pages,
)
from tutelage.web.settings import ServerSettings

__all__ = ["API_PREFIX", "app_from_environment", "create_app"]

API_PREFIX = "/api/v1"


def create_app(
    store: Store,
    settings: ServerSettings | None = None,
    *,
    close_store: bool = False,
    freeze_startup: bool = False,
) -> FastAPI:
    """Return the app serving `store`; the caller opens the store, and closes it unless
    `close_store`, when the app does so as it shuts down. `freeze_startup` is for a
    server process: see `lifespan`."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if freeze_startup:
            # The ~300,000 objects of the loaded modules live as long as the process, yet
            # each full collection walks them all: 100-200 ms in which the server answers
            # no one (seen mid-load in benchmarks/workspace_load.py). Frozen, they are
            # skipped; a full collection then takes a few ms.
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            if close_store:
                store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="tutelage",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        # The interactive docs pages load their scripts from a CDN, which the pages' CSP
        # (and air-gapped sites) forbid; the OpenAPI document itself is served.
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_unstorable_input)],
    )
    app.state.store = store
    app.state.settings = settings or ServerSettings()
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)
    api = [auth_api, work_api, admin_api, quality_api, access_api, security_api]
    for module in api:
        app.include_router(module.router, prefix=API_PREFIX)
    install_openapi(app, [(API_PREFIX, module.router) for module in api])
    app.include_router(auth_pages.router)
    app.include_router(account_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(quality_pages.router)
    app.include_router(dataset_pages.router)
    app.include_router(security_pages.router)
    app.include_router(evaluation_pages.router)
    app.include_router(work_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_environment() -> FastAPI:
    """Return an app for the store its ``TUTELAGE_*`` settings name: what each worker
    process of `tutelage serve --workers N` runs."""
    settings = ServerSettings()
    return create_app(
        open_store(settings.db, migrate=False), settings, close_store=True, freeze_startup=True
    )
