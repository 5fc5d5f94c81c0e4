"""Who is calling: `authenticate(scope, ...)` turns a request's credentials into a `Principal`.

A request carries at most one credential; each is one mechanism:

- `Authorization: Bearer fdt_...`: an API token. Its rights are its scopes (and profile, when it is
  limited to one) intersected with its owner's *current* bindings, read at every request. A run's
  token (owner "run:<id>", `profiles.workload`) holds an `edit` member's rights in its profile only.
- `Authorization: Bearer <FLOWDECK_TOKEN>`: the legacy `flowdeck up --token`, a cluster admin.
- The login cookie (`flowdeck_login`, `__Host-flowdeck_login` over HTTPS): a browser login
  (`profiles.logins`), with the groups its OIDC provider named at sign-in; the principal is marked
  `by_cookie` so that writes get CSRF checks.
- The trusted user header (`kubeflow-userid` unless configured), only when the TCP peer is one of
  `trusted_proxies`; the groups header, when configured, adds "group:<name>" principals.

Two credentials at once are a 400 (which one would win is exactly what an attacker would probe);
one that is wrong, expired or revoked is a 401; none at all is `rbac.ANONYMOUS` (the caller decides
whether anonymous may do anything, e.g. the implicit single-user mode), and so is the cookie of a
login that ended (browsers keep sending it; the sign-in page must still work). Messages never repeat
a credential.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any

from flowdeck.config import Settings
from flowdeck.profiles import tokens
from flowdeck.profiles.logins import COOKIE, SECURE_COOKIE, LoginRefused, check_login
from flowdeck.profiles.proxies import is_trusted_proxy
from flowdeck.profiles.rbac import ANONYMOUS, SCOPES, Principal, roles_from_bindings
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import as_utc, utcnow

#: The principal the legacy `--token` / FLOWDECK_TOKEN authenticates.
LEGACY_ADMIN = Principal(name="user:admin", cluster_admin=True)


class AuthenticationError(Exception):
    """The request's credentials are refused: HTTP `status` (400 or 401) and one line saying why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def authenticate(scope: Mapping[str, Any], *, identity: IdentityStore, settings: Settings) -> Principal:
    """The principal making the request described by the ASGI `scope` (HTTP or websocket).

    Reads `scope["headers"]`, `scope["client"]` (the TCP peer, for trusted proxies) and
    `scope["scheme"]` (which cookie name counts). Runs a few indexed queries: call it off the
    event loop, or accept ~0.2 ms on it. Raises `AuthenticationError(status, message)`.
    """
    headers: Sequence[tuple[bytes, bytes]] = scope.get("headers") or ()
    authorization = _values(headers, b"authorization")
    https = scope.get("scheme") in ("https", "wss")
    cookie = login_cookie(_values(headers, b"cookie"), https)
    proxied = _trusted_header(headers, scope.get("client"), settings)
    given = [name for name, present in (("an Authorization header", authorization),
                                        ("a login cookie", cookie is not None),
                                        (f"a {settings.trusted_user_header} header", proxied is not None)) if present]
    if len(given) > 1:
        raise AuthenticationError(400, f"the request carries {' and '.join(given)}: send only one credential")
    if authorization:
        if len(authorization) > 1:
            raise AuthenticationError(400, "the request carries several Authorization headers")
        return _bearer(authorization[0], identity, settings)
    if cookie is not None:
        login, now = tokens.digest(cookie), utcnow()
        key = f"login:{login}"
        remembered = identity.recall(key, now)  # the common case: no query at all
        if remembered is not None:
            identity.login_seen(login, now)  # still active (written at most once a minute)
            return remembered
        read_at = identity.generation()
        try:
            user, groups, valid_until = check_login(identity, cookie, settings)
        except LoginRefused:  # browsers keep sending an ended login's cookie: it is no credential
            return ANONYMOUS
        principal = _user_principal(identity, user, groups, by_cookie=True)
        identity.remember(key, principal, valid_until, read_at)
        return principal
    if proxied is not None:
        user, groups = proxied
        return _user_principal(identity, user, groups, must_exist=False)
    return ANONYMOUS


def _values(headers: Sequence[tuple[bytes, bytes]], name: bytes) -> list[str]:
    return [value.decode("latin-1") for key, value in headers if key.lower() == name]


def _bearer(header: str, identity: IdentityStore, settings: Settings) -> Principal:
    scheme, _, credential = header.strip().partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        raise AuthenticationError(401, "the Authorization header must be 'Bearer <token>'")
    if settings.token and hmac.compare_digest(credential.encode(), settings.token.encode()):
        return LEGACY_ADMIN
    lookup = tokens.lookup_key(credential)
    if lookup is None:
        raise AuthenticationError(401, "invalid bearer token")
    wanted = tokens.digest(credential)
    now = utcnow()
    remembered = identity.recall(wanted, now)  # the common case: no query at all
    if remembered is not None:
        token_id, principal = remembered
        identity.token_used(token_id, now)
        return principal
    read_at = identity.generation()
    principal, row = _token_principal(identity, lookup, wanted, now)
    identity.token_used(row.id, now)
    identity.remember(wanted, (row.id, principal), as_utc(row.expires_at) if row.expires_at else None, read_at)
    return principal


def _token_principal(identity: IdentityStore, lookup: str, wanted: str, now: datetime) -> tuple[Principal, Any]:
    """The principal a token stands for now, read from the tables, and the token's row."""
    row = next((r for r in identity.tokens_by_lookup(lookup) if hmac.compare_digest(r.digest, wanted)), None)
    if row is None:
        raise AuthenticationError(401, "invalid bearer token")
    if row.revoked_at is not None:
        raise AuthenticationError(401, f"token {row.id} was revoked")
    if row.expires_at is not None and as_utc(row.expires_at) <= now:
        raise AuthenticationError(401, f"token {row.id} expired on {as_utc(row.expires_at):%Y-%m-%d %H:%M} UTC")
    kind, _, owner = row.owner.partition(":")
    scopes = frozenset(row.scopes or ()) & frozenset(SCOPES)
    if kind == "run" and row.profile is not None:  # a run's workload identity: an `edit` member of its profile
        return Principal(name=row.owner, roles={row.profile: "edit"}, token_scopes=scopes,
                         token_profile=row.profile, token_expires_at=as_utc(row.expires_at)), row
    if kind != "user":
        raise AuthenticationError(401, f"token {row.id} belongs to {row.owner!r}, which cannot sign in")
    principal = _user_principal(identity, owner, ())
    return Principal(name=principal.name, roles=principal.roles, cluster_admin=principal.cluster_admin,
                     token_scopes=scopes, token_profile=row.profile, token_expires_at=as_utc(row.expires_at)), row


def login_cookie(cookie_headers: list[str], https: bool) -> str | None:
    """The login cookie's value; over HTTPS only the `__Host-` one counts (others may come from subdomains)."""
    name = SECURE_COOKIE if https else COOKIE
    found: list[str] = []
    for header in cookie_headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if name in jar:
            found.append(jar[name].value)
    if len(found) > 1:
        raise AuthenticationError(400, "the request carries several login cookies")
    return found[0] if found else None


def _trusted_header(headers: Sequence[tuple[bytes, bytes]], client: Any,
                    settings: Settings) -> tuple[str, tuple[str, ...]] | None:
    """(user, groups) named by a trusted proxy, or None when the request names no user that way."""
    if not settings.trusted_proxies:
        return None
    user_header = settings.trusted_user_header
    names = {key.decode("latin-1").lower() for key, _ in headers}
    for header in (user_header, settings.trusted_groups_header):
        if header and header.replace("-", "_") in names and "-" in header:
            raise AuthenticationError(400, f"header {header.replace('-', '_')!r} is refused: "
                                           f"did a proxy mean {header!r}?")
    values = _values(headers, user_header.encode())
    if not values:
        return None
    if not is_trusted_proxy(client[0] if client else None, settings.trusted_proxies):
        raise AuthenticationError(401, f"the {user_header} header is accepted only from a trusted proxy")
    if len(values) > 1:
        raise AuthenticationError(400, f"the request carries several {user_header} headers")
    user = values[0].strip()
    if settings.trusted_user_prefix:
        if not user.startswith(settings.trusted_user_prefix):
            raise AuthenticationError(401, f"the {user_header} header does not start with "
                                           f"{settings.trusted_user_prefix!r}")
        user = user[len(settings.trusted_user_prefix):]
    if not user:
        raise AuthenticationError(401, f"the {user_header} header is empty")
    groups: tuple[str, ...] = ()
    if settings.trusted_groups_header:
        group_values = _values(headers, settings.trusted_groups_header.encode())
        if len(group_values) > 1:
            raise AuthenticationError(400, f"the request carries several {settings.trusted_groups_header} headers")
        groups = tuple(g.strip() for g in (group_values[0] if group_values else "").split(",") if g.strip())
    return user, groups


def _user_principal(identity: IdentityStore, name: str, groups: Sequence[str], *, by_cookie: bool = False,
                    must_exist: bool = True) -> Principal:
    """The principal of user `name` (and their groups) with the roles their bindings give them now."""
    user = identity.get_user(name)
    if user is None and must_exist:
        raise AuthenticationError(401, f"user {name!r} does not exist")
    if user is not None and user.disabled:
        raise AuthenticationError(401, f"user {name!r} is disabled")
    principals = [f"user:{name}", *(f"group:{group}" for group in groups)]
    return Principal(name=f"user:{name}", roles=roles_from_bindings(identity.roles_of(principals)),
                     cluster_admin=bool(user and user.is_cluster_admin), by_cookie=by_cookie)
