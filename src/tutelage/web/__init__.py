"""The expert workspace over HTTP: a JSON API and server-rendered pages (FastAPI)."""

from __future__ import annotations

from tutelage.web.app import create_app
from tutelage.web.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
