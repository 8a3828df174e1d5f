"""Where tutelage keeps its files and which store it talks to, from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "default_db_url", "settings", "tutelage_home"]


class Settings(BaseSettings):
    """Settings read from ``TUTELAGE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="TUTELAGE_", extra="ignore")

    home: Path = Path("~/.tutelage")
    db: str | None = None


def settings() -> Settings:
    """Return the settings as the environment gives them now (not cached: tests change it)."""
    return Settings()


def tutelage_home() -> Path:
    """Return the folder for the default store and prepared models (``TUTELAGE_HOME``)."""
    return settings().home.expanduser()


def default_db_url() -> str:
    """Return ``TUTELAGE_DB`` if set, else the SQLite file ``<home>/tutelage.db``."""
    configured = settings().db
    if configured:
        return configured
    return f"sqlite:///{tutelage_home() / 'tutelage.db'}"
