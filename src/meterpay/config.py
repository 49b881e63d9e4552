"""One settings object, read from the environment (``MP_*``) at start-up.

Nothing here is built at import time; ``Settings()`` is constructed by the
entry point and handed to ``bootstrap``.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MP_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./meterpay.db",
        description="SQLAlchemy URL; sqlite:///path or postgresql+psycopg://user@host/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    default_timezone: str = "Asia/Shanghai"
    future_tolerance_seconds: int = Field(
        default=300, ge=0, description="how far ahead of our clock a meter's time may run"
    )
    partitions_ahead_months: int = Field(default=3, ge=1, le=24)
    ingest_batch_size: int = Field(default=2000, ge=1, le=50_000)
    api_tokens: str = Field(
        default="",
        description="comma-separated API tokens accepted on /api/v1 (empty: API open, demo only)",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        if not url.startswith(("sqlite://", "postgresql+psycopg://")):
            raise ValueError("MP_DATABASE_URL must be a sqlite:// or postgresql:// URL")
        return url

    @property
    def future_tolerance(self) -> timedelta:
        return timedelta(seconds=self.future_tolerance_seconds)

    @property
    def token_set(self) -> frozenset[str]:
        return frozenset(t.strip() for t in self.api_tokens.split(",") if t.strip())
