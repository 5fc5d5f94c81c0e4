"""Settings for every part of flowdeck, read once from the environment.

This is the only module that reads environment variables for settings: everything else takes a
`Settings` object (or calls `get_settings()`), so tests can point a whole flowdeck at a temporary
home by setting `FLOWDECK_HOME`.
"""

from __future__ import annotations

import ipaddress
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    #: CPUs that running training jobs may request in all (default: this machine's); jobs beyond it wait.
    training_cpu_capacity: float | None = Field(default=None, gt=0)
    #: The control plane that CLI commands talk to (`FLOWDECK_URL`).
    url: str | None = None
    #: Bearer token: `flowdeck up` requires it of every API call when set; the CLI sends it.
    token: str | None = None

    # -- identity (profiles/): how callers sign in ---------------------------------------------
    #: Idle and absolute lifetimes of a browser login, in seconds (12 hours, 7 days).
    login_idle_seconds: int = Field(default=12 * 3600, ge=60)
    login_max_seconds: int = Field(default=7 * 86400, ge=60)
    #: Default lifetime of a new API token, in days.
    token_days: int = Field(default=90, ge=1)
    #: OIDC login (Dex, Keycloak, Google...): the issuer URL (its discovery document is
    #: `<issuer>/.well-known/openid-configuration`), this client's id and secret, the scopes asked for.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_scopes: str = "openid email profile groups"
    oidc_groups_claim: str = "groups"
    #: Trusted-header mode (behind oauth2-proxy, Istio...): the header naming the user, accepted only
    #: from peers in `trusted_proxies` (comma-separated CIDRs; empty: the mode is off).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    trusted_user_header: str = "kubeflow-userid"
    #: Stripped from the user header's value (e.g. IAP's `accounts.google.com:`); required when set.
    trusted_user_prefix: str = ""
    #: Header listing the user's groups (comma-separated); empty: none.
    trusted_groups_header: str = ""
    #: Signs the short-lived OIDC login state cookie; a random key per process when unset.
    secret_key: str | None = None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        """`FLOWDECK_TRUSTED_PROXIES=10.0.0.0/8,127.0.0.1` (a comma-separated list); each must be a network."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for network in value:
                try:
                    ipaddress.ip_network(str(network), strict=False)
                except ValueError:
                    raise ValueError(f"{network!r} is not an IP network (e.g. 10.0.0.0/8)") from None
        return value

    @field_validator("trusted_user_header", "trusted_groups_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        value = value.strip().lower()
        if value and not all(c.isalnum() or c == "-" for c in value):
            raise ValueError(f"{value!r} is not a header name (letters, digits and '-')")
        return value

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
