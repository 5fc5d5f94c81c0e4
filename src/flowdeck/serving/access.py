"""Who may call an InferenceService's router: the control plane's credentials, checked by the router itself.

When the control plane that owns a service requires credentials (its own rule, `AccessMode.multi_user`,
which the controller writes into the routing table), every data-plane request must carry one: a
bearer token or the dashboard's login cookie (or a trusted proxy's user header, where configured),
resolved by the control plane's own `profiles.authn.authenticate` against the control plane's store,
which the router opens through the same database URL and only reads. Predicting is *reading* a model:
a principal may use a service when they hold `read` in its namespace (a profile's viewers may query
its models, as they may read its runs and artifacts; changing the service stays `write`, on the
resource API).

- No credential: 401 `{"error": ...}` with `WWW-Authenticate: Bearer`; a wrong, expired or revoked
  one: 401 (two at once: 400), with the control plane's message.
- A principal without `read` there: 404, exactly what a replica answers for a model that does not
  exist (`model 'NAME' does not exist`, or `no such endpoint: PATH` where the path names no model):
  another profile cannot tell a service's models from missing ones.

Resolving a credential costs a few indexed queries (~0.3 ms), too much for every request, so the
principal (or the refusal) is remembered per credential for `TTL_SECONDS`: a revoked token, a disabled
user or a removed binding takes effect on the data plane within that time (the control plane itself
sees such changes at once; it can, since every change goes through it). A cache hit costs a few
microseconds. Misses run on a worker thread, so a slow database never stalls other requests or health
checks. The router records no token use: `last_used_at` reflects control-plane calls only.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowdeck.config import Settings
from flowdeck.profiles.authn import AuthenticationError, authenticate
from flowdeck.profiles.rbac import Principal
from flowdeck.serving.errors import model_not_found
from flowdeck.store import Store, open_store
from flowdeck.store.identity import IdentityStore

#: How long a credential's principal (or its refusal) is believed before the store is read again.
TTL_SECONDS = 5.0
#: Credentials remembered at most (the cache starts over when full).
_REMEMBERED = 4096
ANONYMOUS_MESSAGE = "this service requires credentials (a bearer token or a login)"


@dataclass(frozen=True)
class Refusal:
    """An answer instead of forwarding: status, `{"error": message}`, and whether to ask for a bearer token."""

    status: int
    message: str

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"www-authenticate", b"Bearer")] if self.status == 401 else []


class _ReadOnlyIdentity(IdentityStore):
    """The control plane's identity tables, read but never written, with no cache of their own.

    `IdentityStore` remembers principals until the control plane's process changes identity, which
    this process never hears of: here `RouterAccess` remembers them for `TTL_SECONDS` instead.
    """

    def recall(self, credential: str, now: datetime) -> Any | None:
        return None

    def remember(self, credential: str, principal: Any, expires_at: datetime | None, read_at: int) -> None:
        return None

    def token_used(self, token_id: str, when: datetime) -> None:
        return None

    def login_seen(self, digest: str, when: datetime) -> None:
        return None


class RouterAccess:
    """Decides, per request, whether it may reach a service in a namespace."""

    def __init__(self, settings: Settings, ttl: float = TTL_SECONDS) -> None:
        self.settings = settings
        self.ttl = ttl
        self._credential_headers = frozenset(
            h.encode() for h in ("authorization", "cookie", settings.trusted_user_header,
                                 settings.trusted_groups_header) if h)
        self._lock = threading.Lock()
        self._store: Store | None = None
        self._identity: IdentityStore | None = None
        self._remembered: dict[tuple[Any, ...], tuple[float, Principal | AuthenticationError]] = {}

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    async def refusal(self, scope: Mapping[str, Any], namespace: str) -> Refusal | None:
        """None when the request's principal may read in `namespace`; else the answer to give instead."""
        key = self._key(scope)
        found = self._remembered.get(key)
        if found is None or found[0] <= time.monotonic():
            found = await asyncio.to_thread(self._resolve, key, scope)
        outcome = found[1]
        if isinstance(outcome, AuthenticationError):
            return Refusal(outcome.status, outcome.message)
        if not outcome.authenticated:
            return Refusal(401, ANONYMOUS_MESSAGE)
        if outcome.allows("read", namespace):
            return None
        return not_found(scope["path"])

    def _key(self, scope: Mapping[str, Any]) -> tuple[Any, ...]:
        """What identifies the request's credentials: the headers `authenticate` reads (and, for a
        trusted proxy's header, the peer it came from)."""
        names = self._credential_headers
        found = tuple((k.lower(), v) for k, v in scope["headers"] if k.lower() in names)
        if self.settings.trusted_proxies and found:
            client = scope.get("client")
            return (*found, client[0] if client else None)
        return found

    def _resolve(self, key: tuple[Any, ...], scope: Mapping[str, Any]) -> tuple[float, Principal | AuthenticationError]:
        outcome: Principal | AuthenticationError
        try:
            outcome = authenticate(scope, identity=self._identities(), settings=self.settings)
        except AuthenticationError as exc:
            outcome = exc
        ttl = self.ttl
        expires_at = getattr(outcome, "token_expires_at", None)
        if expires_at is not None:  # a token that expires sooner is not believed past its expiry
            ttl = min(ttl, expires_at.timestamp() - time.time())
        until = time.monotonic() + ttl
        if len(self._remembered) >= _REMEMBERED:
            self._remembered.clear()
        self._remembered[key] = (until, outcome)
        return until, outcome

    def _identities(self) -> IdentityStore:
        with self._lock:  # opened on the first credential to check (an open service never needs it)
            if self._identity is None:
                self._store = open_store(self.settings.resolved_database_url)
                self._identity = _ReadOnlyIdentity(self._store.engine)
            return self._identity


def not_found(path: str) -> Refusal:
    """What a replica answers to `path` when the model it names does not exist (or the path is no endpoint)."""
    name = model_in(path)
    if name is None:
        return Refusal(404, f"no such endpoint: {path}")
    return Refusal(404, model_not_found(name).message)


def model_in(path: str) -> str | None:
    """The model a data-plane path names (V1, V2, the repository extension), or None."""
    for prefix in ("/v1/models/", "/v2/models/", "/v2/repository/models/"):
        if path.startswith(prefix):
            rest = path[len(prefix):]
            name = rest.split("/", 1)[0]
            if prefix == "/v1/models/":
                name = name.partition(":")[0]
            return name or None
    return None
