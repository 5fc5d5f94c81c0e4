"""Browser logins: an opaque random cookie whose SHA-256 keys a server-side `logins` row.

Nothing about the user travels in the cookie, so logging out, disabling a user or changing their
password ends the login at once (the row is revoked). A login ends after `login_idle_seconds`
without a request and `login_max_seconds` after it began, whatever happens. Every login mints a new
value (no fixation). Over HTTPS the cookie is `Secure` and named with the `__Host-` prefix (the
browser then refuses it from subdomains and other paths); always HttpOnly, SameSite=Lax, Path=/.

`LoginThrottle` limits password attempts with the `limits` package: per account and per client
address, counted before the password is checked, so parallel guesses are throttled too.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import Response

from flowdeck.config import Settings
from flowdeck.profiles.tokens import digest
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import as_utc, utcnow

COOKIE = "flowdeck_login"
#: The cookie's name over HTTPS (the prefix makes browsers enforce Secure, Path=/ and no Domain).
SECURE_COOKIE = "__Host-" + COOKIE
#: Password attempts allowed per account, and per client address.
ACCOUNT_LIMIT = "10/minute"
ADDRESS_LIMIT = "100/hour"


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


@dataclass
class LoginThrottle:
    """Counts password attempts in memory (one control plane process serves a store)."""

    account: RateLimitItem = parse(ACCOUNT_LIMIT)
    address: RateLimitItem = parse(ADDRESS_LIMIT)

    def __post_init__(self) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def attempt(self, user: str, address: str | None) -> str | None:
        """Count an attempt; the reason it must be refused, or None when it may go ahead."""
        if not self._limiter.hit(self.address, "address", address or "-"):
            return f"too many sign-in attempts from your address (at most {ADDRESS_LIMIT}); try again later"
        if not self._limiter.hit(self.account, "account", user):
            return f"too many sign-in attempts for {user!r} (at most {ACCOUNT_LIMIT}); wait a minute and try again"
        return None
