"""Settings for every part of flowdeck, read once from the environment.

This is the only module that reads environment variables for settings: everything else takes a
`Settings` object (or calls `get_settings()`), so tests can point a whole flowdeck at a temporary
home by setting `FLOWDECK_HOME`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowdeck.defaults import DEFAULT_URL


class Settings(BaseSettings):
    """Where flowdeck keeps its state and how it runs workloads."""

    model_config = SettingsConfigDict(env_prefix="FLOWDECK_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".flowdeck")
    database_url: str | None = None
    artifact_root: str | None = None
    runtime: Literal["local", "kubernetes"] = "local"
    max_parallel_tasks: int = Field(default_factory=lambda: max(4, 4 * (os.cpu_count() or 1)), ge=1)
    #: Runs the control plane executes at once; later submissions wait in PENDING.
    max_concurrent_runs: int = Field(default=32, ge=1)
    #: The control plane that CLI commands talk to (`FLOWDECK_URL`).
    url: str | None = None
    #: Bearer token: `flowdeck up` requires it of every API call when set; the CLI sends it.
    token: str | None = None

    @property
    def control_plane_url(self) -> str:
        return (self.url or DEFAULT_URL).rstrip("/")

    @property
    def resolved_database_url(self) -> str:
        """The metadata DB: a SQLite file inside home unless one is configured."""
        return self.database_url or f"sqlite:///{self.home / 'flowdeck.db'}"

    @property
    def resolved_artifact_root(self) -> str:
        """Root URI or directory for artifacts: `home/artifacts` unless configured."""
        return self.artifact_root or str(self.home / "artifacts")

    @property
    def venv_cache_dir(self) -> Path:
        """Virtual environments built for components' `packages_to_install`, reused across runs."""
        return self.home / "venvs"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; call `get_settings.cache_clear()` after changing the env)."""
    return Settings()
