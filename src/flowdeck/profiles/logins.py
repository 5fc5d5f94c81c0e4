"""Browser logins: an opaque random cookie whose SHA-256 keys a server-side `logins` row.

Nothing about the user travels in the cookie, so logging out, disabling a user or changing their
password ends the login at once (the row is revoked). A login ends after `login_idle_seconds`
without a request and `login_max_seconds` after it began, whatever happens. Every login mints a new
value (no fixation). Over HTTPS the cookie is `Secure` and named with the `__Host-` prefix (the
browser then refuses it from subdomains and other paths); always HttpOnly, SameSite=Lax, Path=/.

`LoginThrottle` limits failed password attempts with the `limits` package, three ways: per account
and client address (10 a minute: the 11th wrong password in a minute from one place is refused), per
account from every address together (300 an hour, against guessing spread over many machines; more
than one address may send, so no single one can lock an account's owner out), and per client address
over all accounts (100 an hour). Only failures count, so a user's own sign-ins are never held
against them, and someone else's failures from elsewhere block them only past the per-account
limit. Attempts still being checked count as failures until they end, so parallel guesses are
throttled too. Behind a trusted proxy (`trusted_proxies`) the client address is the one the proxies
name in X-Forwarded-For (`client_address`), not the proxy's.
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import Response

from flowdeck.config import Settings
from flowdeck.profiles.proxies import is_trusted_proxy
from flowdeck.profiles.tokens import digest
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import as_utc, utcnow

COOKIE = "flowdeck_login"
#: The cookie's name over HTTPS (the prefix makes browsers enforce Secure, Path=/ and no Domain).
SECURE_COOKIE = "__Host-" + COOKIE
#: Failed password attempts allowed per (account, client address), per account, and per client address.
PAIR_LIMIT = "10/minute"
ACCOUNT_LIMIT = "300/hour"
ADDRESS_LIMIT = "100/hour"
#: Longest client address kept (X-Forwarded-For entries are text a proxy passed on).
_ADDRESS_CHARS = 64


def safe_next(value: str | None) -> str:
    """`value` when it is a path on this server ("/runs?x=1"), else "/": no open redirects after sign-in."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c == "\\" for c in value):
        return "/"
    return value


def cookie_name(https: bool) -> str:
    return SECURE_COOKIE if https else COOKIE


class LoginRefused(Exception):
    """The cookie names no usable login (unknown, expired, revoked, or its user is disabled)."""


def start_login(identity: IdentityStore, user: str, settings: Settings, client: str | None,
                groups: Sequence[str] | None = None) -> str:
    """Record a new login for `user` and return the cookie value that proves it.

    `groups`: what an OIDC provider said the user belongs to, kept for the login's lifetime.
    """
    value = secrets.token_urlsafe(32)
    now = utcnow()
    identity.add_login(digest=digest(value), user=user, created_at=now, last_seen_at=now,
                       expires_at=now + timedelta(seconds=settings.login_max_seconds),
                       client=(client or "")[:64] or None, groups=list(groups) if groups is not None else None)
    return value


def check_login(identity: IdentityStore, value: str,
                settings: Settings) -> tuple[str, tuple[str, ...], datetime]:
    """(user name, groups, valid until at least) of the login this cookie value proves; `LoginRefused` if none."""
    row = identity.get_login(digest(value))
    if row is None or row.revoked_at is not None:
        raise LoginRefused("you are signed out; sign in again")
    now = utcnow()
    idle_limit = as_utc(row.last_seen_at) + timedelta(seconds=settings.login_idle_seconds)
    if as_utc(row.expires_at) <= now or idle_limit <= now:
        raise LoginRefused("your login expired; sign in again")
    identity.login_seen(row.digest, now)
    return row.user, tuple(row.groups or ()), min(as_utc(row.expires_at), idle_limit)


def end_login(identity: IdentityStore, value: str) -> None:
    identity.end_login(digest(value))


def set_login_cookie(response: Response, value: str, *, https: bool, settings: Settings) -> None:
    response.set_cookie(cookie_name(https), value, max_age=settings.login_max_seconds, path="/",
                        secure=https, httponly=True, samesite="lax")


def clear_login_cookie(response: Response, *, https: bool) -> None:
    response.delete_cookie(cookie_name(https), path="/", secure=https, httponly=True, samesite="lax")


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[str]) -> str | None:
    """Where a sign-in attempt comes from, for throttling: the TCP peer, or, when the peer is a trusted proxy,
    the nearest X-Forwarded-For entry that is not a trusted proxy.

    Each proxy appends the address it was reached from, so the entries are read from the right; what
    lies left of the first untrusted one may be made up by the client, and is ignored.
    """
    if not is_trusted_proxy(peer, trusted_proxies):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not is_trusted_proxy(hop, trusted_proxies):
            return hop[:_ADDRESS_CHARS]
    return hops[0][:_ADDRESS_CHARS] if hops else peer


@dataclass
class Attempt:
    """One password attempt under way: `refused` says why it may not go ahead; `failed()` counts it."""

    refused: str | None = None
    wrong: bool = False

    def failed(self) -> None:
        self.wrong = True


@dataclass
class LoginThrottle:
    """Counts failed password attempts in memory (one control plane process serves a store)."""

    pair: RateLimitItem = parse(PAIR_LIMIT)
    account: RateLimitItem = parse(ACCOUNT_LIMIT)
    address: RateLimitItem = parse(ADDRESS_LIMIT)

    def __post_init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        #: Attempts being checked now, by limit: counted as failures until they end.
        self._pending: Counter[tuple[str, ...]] = Counter()
        self._lock = threading.Lock()

    @contextmanager
    def attempt(self, user: str, address: str | None) -> Iterator[Attempt]:
        """An attempt to sign in as `user` from `address`: refused (`Attempt.refused`) when a limit is spent,
        counted when the block calls `Attempt.failed()`."""
        where = address or "-"
        limits = ((self.pair, ("pair", user, where), f"for {user!r} (at most {PAIR_LIMIT} failed); wait a "
                                                      "minute and try again"),
                  (self.address, ("address", where), f"from your address (at most {ADDRESS_LIMIT} failed); "
                                                      "try again later"),
                  (self.account, ("account", user), f"for {user!r} from several addresses (at most "
                                                     f"{ACCOUNT_LIMIT} failed); try again later"))
        with self._lock:
            spent = next((reason for item, key, reason in limits
                          if not self._limiter.test(item, *key, cost=self._pending[key] + 1)), None)
            if spent is None:
                self._pending.update(key for _, key, _ in limits)
        attempt = Attempt(refused=None if spent is None else f"too many sign-in attempts {spent}")
        try:
            yield attempt
        finally:
            if spent is None:
                with self._lock:
                    self._pending.subtract(key for _, key, _ in limits)
                    for item, key, _ in limits:
                        if self._pending[key] <= 0:
                            del self._pending[key]
                        if attempt.wrong:
                            self._limiter.hit(item, *key)
