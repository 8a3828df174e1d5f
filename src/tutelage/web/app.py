"""The web application: JSON API under /api/v1, server-rendered pages, our own static files."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tutelage import __version__
from tutelage.store import Store
from tutelage.web.errors import install_error_handlers
from tutelage.web.headers import SecurityHeadersMiddleware
from tutelage.web.pages import STATIC_DIR
from tutelage.web.routes import (
    admin_api,
    admin_pages,
    auth_api,
    auth_pages,
    work_api,
    work_pages,
)
from tutelage.web.settings import ServerSettings

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/api/v1"


def create_app(store: Store, settings: ServerSettings | None = None) -> FastAPI:
    """Return the app serving `store`; the caller opens and closes the store."""
    app = FastAPI(
        title="tutelage",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        # The interactive docs pages load their scripts from a CDN, which the pages' CSP
        # (and air-gapped sites) forbid; the OpenAPI document itself is served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.store = store
    app.state.settings = settings or ServerSettings()
    app.add_middleware(SecurityHeadersMiddleware)
    install_error_handlers(app)
    app.include_router(auth_api.router, prefix=API_PREFIX)
    app.include_router(work_api.router, prefix=API_PREFIX)
    app.include_router(admin_api.router, prefix=API_PREFIX)
    app.include_router(auth_pages.router)
    app.include_router(admin_pages.router)
    app.include_router(work_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
