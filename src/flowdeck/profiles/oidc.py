"""OIDC login (Dex, Keycloak, Google, Entra...) with authlib's Starlette client: PKCE S256, state, nonce.

authlib keeps a login's state, nonce and PKCE verifier in `request.session` between the redirect to
the provider and the callback. Instead of a session middleware for the whole app, `OidcLogin` keeps
that dict in one short-lived cookie signed with itsdangerous (`flowdeck_oidc`, 10 minutes, HttpOnly,
SameSite=Lax: the callback is a top-level GET from the provider), only on these two routes.

Users are keyed by (issuer, subject), never by email (emails change). A new user is named after the
`email` claim (unless the provider says it is unverified) or `preferred_username`; a user of that
name created by an admin with no password and no OIDC identity is linked (pre-provisioned), any other
is a conflict. The groups claim becomes "group:<name>" principals.
"""

from __future__ import annotations

import json
import secrets
import warnings
from dataclasses import dataclass
from typing import Any

from authlib.deprecate import AuthlibDeprecationWarning
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.requests import Request
from starlette.responses import Response

from flowdeck.config import Settings
from flowdeck.profiles.logins import safe_next
from flowdeck.store.identity import USER_NAME, IdentityStore, UserExists

with warnings.catch_warnings():  # authlib 1.9 prefers httpx2 and warns when it falls back on httpx (which works)
    warnings.simplefilter("ignore", AuthlibDeprecationWarning)
    from authlib.integrations.starlette_client import OAuth, OAuthError

STATE_COOKIE = "flowdeck_oidc"
STATE_SECONDS = 600


class OidcFailed(Exception):
    """The OIDC login did not complete; the message says why (for the user, never a secret)."""


@dataclass(frozen=True)
class OidcIdentity:
    user: str
    groups: tuple[str, ...]


class OidcLogin:
    """The OIDC client of one control plane (configured by `oidc_issuer`, `oidc_client_id`...)."""

    def __init__(self, settings: Settings) -> None:
        assert settings.oidc_issuer and settings.oidc_client_id
        self.settings = settings
        self.serializer = URLSafeTimedSerializer(settings.secret_key or secrets.token_hex(32), salt="flowdeck-oidc")
        oauth = OAuth()
        self.client = oauth.register(
            name="oidc",
            server_metadata_url=settings.oidc_issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            client_kwargs={"scope": settings.oidc_scopes, "code_challenge_method": "S256"},
        )

    async def redirect(self, request: Request, callback_url: str, next_path: str) -> Response:
        """The redirect to the provider's login page, with the state cookie set."""
        request.scope["session"] = {"next": safe_next(next_path)}
        try:
            response = await self.client.authorize_redirect(request, callback_url)
        except Exception as exc:  # noqa: BLE001 - the provider is unreachable or its discovery document is bad
            raise OidcFailed(f"the OIDC provider cannot be reached: {type(exc).__name__}") from None
        https = request.url.scheme == "https"
        response.set_cookie(STATE_COOKIE, self.serializer.dumps(json.dumps(request.session)), max_age=STATE_SECONDS,
                            path="/oidc/", secure=https, httponly=True, samesite="lax")
        return response

    async def complete(self, request: Request, identity: IdentityStore) -> tuple[OidcIdentity, str]:
        """(who signed in, the path to go to next), after checking the provider's answer and ID token."""
        try:
            session = json.loads(self.serializer.loads(request.cookies.get(STATE_COOKIE, ""), max_age=STATE_SECONDS))
        except (BadSignature, ValueError):
            raise OidcFailed("this sign-in expired or was not started here; start again") from None
        request.scope["session"] = session
        try:
            token = await self.client.authorize_access_token(request)
        except OAuthError as exc:
            raise OidcFailed(f"the OIDC provider refused the sign-in: {exc.description or exc.error}") from None
        claims = token.get("userinfo")
        if not claims:
            raise OidcFailed("the OIDC provider sent no ID token")
        return self._user(identity, dict(claims)), safe_next(session.get("next"))

    def _user(self, identity: IdentityStore, claims: dict[str, Any]) -> OidcIdentity:
        issuer, subject = str(claims["iss"]), str(claims["sub"])
        groups_claim = claims.get(self.settings.oidc_groups_claim) or []
        groups = tuple(str(g) for g in groups_claim if isinstance(g, str)) if isinstance(groups_claim, list) else ()
        user = identity.user_by_oidc(issuer, subject)
        if user is not None:
            if user.disabled:
                raise OidcFailed(f"user {user.name!r} is disabled")
            return OidcIdentity(user.name, groups)
        name = _name_from(claims)
        existing = identity.get_user(name)
        if existing is not None:
            # only a verified email may claim an existing (passwordless) account: a preferred_username is
            # chosen by the user at many providers, and an unverified email proves nothing
            proven = claims.get("email_verified") is True and claims.get("email") == name
            if existing.password_hash is not None or existing.oidc_subject is not None or not proven:
                raise OidcFailed(f"a different user named {name!r} exists already; ask an admin")
            if existing.disabled:
                raise OidcFailed(f"user {name!r} is disabled")
            identity.update_user(name, oidc_issuer=issuer, oidc_subject=subject)
            return OidcIdentity(name, groups)
        try:
            identity.create_user(name, oidc_issuer=issuer, oidc_subject=subject,
                                 email=claims.get("email"), display_name=claims.get("name"))
        except UserExists:
            raise OidcFailed(f"a different user named {name!r} exists already; ask an admin") from None
        return OidcIdentity(name, groups)


def _name_from(claims: dict[str, Any]) -> str:
    email, verified = claims.get("email"), claims.get("email_verified")
    for candidate in ((email if verified is not False else None), claims.get("preferred_username")):
        if isinstance(candidate, str) and USER_NAME.fullmatch(candidate):
            return candidate
    raise OidcFailed("the OIDC provider named no usable user (a verified email or preferred_username)")
