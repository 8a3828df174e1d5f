"""Settings of the web server, read from ``TUTELAGE_*`` environment variables."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from tutelage.settings import default_db_url
from tutelage.workspace.throttling import ThrottlePolicy

__all__ = ["ServerSettings"]


class ServerSettings(BaseSettings):
    """How `tutelage serve` runs: which store, where it listens, how cookies are sent."""

    model_config = SettingsConfigDict(env_prefix="TUTELAGE_", extra="ignore")

    db: str = Field(default_factory=default_db_url)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    # True behind HTTPS: browsers then send the session cookie over encrypted connections only.
    secure_cookies: bool = False
    # A browser session ends this long after its last request (and 7 days after sign-in
    # however active it is).
    session_idle_minutes: int = Field(default=240, ge=1, le=7 * 24 * 60)
    # A model string for red-team candidate generation (see `tutelage generate --model`);
    # None switches generation from the workspace off.
    generation_model: str | None = None
    # Sign-in throttling (see tutelage.workspace.throttling): this many wrong passwords in
    # 15 minutes lock a client address, and (from addresses it was never signed into from)
    # an account; the first lock lasts `login_lock_seconds`, each next one twice as long.
    login_address_failures: int = Field(default=5, ge=1, le=1000)
    login_account_failures: int = Field(default=20, ge=1, le=10_000)
    login_lock_seconds: int = Field(default=60, ge=1, le=24 * 3600)

    @property
    def session_idle(self) -> timedelta:
        return timedelta(minutes=self.session_idle_minutes)

    @property
    def throttle(self) -> ThrottlePolicy:
        return ThrottlePolicy(
            address_failures=self.login_address_failures,
            account_failures=self.login_account_failures,
            first_lock=timedelta(seconds=self.login_lock_seconds),
            longest_lock=max(timedelta(hours=1), timedelta(seconds=self.login_lock_seconds)),
        )
