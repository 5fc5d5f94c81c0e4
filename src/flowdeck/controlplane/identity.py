"""The users and API tokens API: `/apis/flowdeck/v1/users` (cluster admins) and `/apis/flowdeck/v1/tokens`.

Users are created, listed, read, disabled and given a new password by cluster admins; disabling a
user or setting their password ends their logins and revokes their tokens. Everyone manages their
own tokens (a cluster admin anyone's): a new token is shown once, in the answer that creates it;
lists show everything but the secret. A token can mint or revoke only tokens no stronger than itself
(its scopes, its profile): a read-only token can neither become a writing one nor revoke one.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flowdeck.controlplane.app import Ctx
from flowdeck.controlplane.auth import Access, Authenticated, ClusterAdmin
from flowdeck.controlplane.errors import ApiError, DomainErrorRoute
from flowdeck.profiles import tokens
from flowdeck.profiles.passwords import PasswordError, hash_password_async
from flowdeck.profiles.rbac import SCOPES
from flowdeck.store.identity import USER_NAME, UserExists
from flowdeck.store.models import ApiTokenRow, UserRow, as_utc, utcnow


class IdentityRoute(DomainErrorRoute):
    statuses = ((UserExists, 409), (PasswordError, 400))


router = APIRouter(prefix="/apis/flowdeck/v1", route_class=IdentityRoute, tags=["users and tokens"])

Scope = Literal["read", "write", "manage", "own"]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=USER_NAME.pattern, max_length=253)
    password: str | None = None
    email: str | None = Field(default=None, max_length=320)
    display_name: str | None = Field(default=None, max_length=512)
    cluster_admin: bool = False


class NewPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: "user:<name>"; default: the caller. Only cluster admins name someone else.
    owner: str | None = Field(default=None, max_length=300)
    scopes: list[Scope] = Field(default_factory=lambda: list(SCOPES), min_length=1)
    #: Limit the token to one profile (namespace).
    profile: str | None = Field(default=None, max_length=63)
    note: str | None = Field(default=None, max_length=512)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


def _time(value: datetime | None) -> str | None:
    return as_utc(value).isoformat().replace("+00:00", "Z") if value else None


def user_view(row: UserRow) -> dict[str, Any]:
    return {"name": row.name, "display_name": row.display_name, "email": row.email,
            "cluster_admin": bool(row.is_cluster_admin), "disabled": bool(row.disabled),
            "has_password": row.password_hash is not None, "oidc_issuer": row.oidc_issuer,
            "created_at": _time(row.created_at)}


def token_view(row: ApiTokenRow) -> dict[str, Any]:
    """A token as lists show it: everything but the secret (which the store does not have)."""
    now = utcnow()
    state = ("revoked" if row.revoked_at else
             "expired" if row.expires_at and as_utc(row.expires_at) <= now else "active")
    return {"id": row.id, "owner": row.owner, "profile": row.profile, "scopes": list(row.scopes or []),
            "note": row.note, "state": state, "created_at": _time(row.created_at),
            "expires_at": _time(row.expires_at), "last_used_at": _time(row.last_used_at),
            "revoked_at": _time(row.revoked_at)}


# -- users ---------------------------------------------------------------------------------------

@router.post("/users")
async def create_user(body: NewUser, ctx: Ctx, _access: ClusterAdmin) -> dict[str, Any]:
    password_hash = await hash_password_async(body.password) if body.password is not None else None
    row = ctx.identity.create_user(body.name, password_hash=password_hash, email=body.email,
                                   display_name=body.display_name, is_cluster_admin=body.cluster_admin)
    return user_view(row)


@router.get("/users")
def list_users(ctx: Ctx, _access: ClusterAdmin) -> dict[str, Any]:
    return {"users": [user_view(row) for row in ctx.identity.list_users()]}


@router.get("/users/{name}")
def get_user(name: str, ctx: Ctx, _access: ClusterAdmin) -> dict[str, Any]:
    return user_view(_user(ctx, name))


@router.post("/users/{name}/disable")
def disable_user(name: str, ctx: Ctx, _access: ClusterAdmin) -> dict[str, Any]:
    """Disable a user: their logins end and their tokens are revoked at once."""
    if not ctx.identity.update_user(name, revoke_access=True, disabled=True):
        raise ApiError(404, f"user {name!r} not found")
    return user_view(_user(ctx, name))


@router.put("/users/{name}/password")
async def set_password(name: str, body: NewPassword, ctx: Ctx, _access: ClusterAdmin) -> dict[str, Any]:
    """Set a user's password: their logins end and their tokens are revoked."""
    _user(ctx, name)
    password_hash = await hash_password_async(body.password)
    ctx.identity.update_user(name, revoke_access=True, password_hash=password_hash)
    return user_view(_user(ctx, name))


def _user(ctx: Ctx, name: str) -> UserRow:
    row = ctx.identity.get_user(name)
    if row is None:
        raise ApiError(404, f"user {name!r} not found")
    return row


# -- tokens --------------------------------------------------------------------------------------

@router.post("/tokens")
def create_token(body: NewToken, ctx: Ctx, access: Authenticated) -> dict[str, Any]:
    """Mint a token; the answer's `token` is the only time anyone sees it."""
    caller = access.principal
    owner = body.owner or caller.name
    if owner != caller.name:
        access.require_cluster_admin()
    kind, _, name = owner.partition(":")
    user = ctx.identity.get_user(name) if kind == "user" else None
    if user is None or user.disabled:
        raise ApiError(400, f"tokens act for an enabled user, and {tokens.redact(owner)!r} is none"
                            + (" (create it: flowdeck users create)" if owner == caller.name else ""))
    scopes = sorted(set(body.scopes), key=SCOPES.index)
    if caller.token_scopes is not None and not set(scopes) <= caller.token_scopes:
        raise ApiError(403, f"this token may only mint tokens with scopes within {sorted(caller.token_scopes)}")
    if caller.token_profile is not None and body.profile != caller.token_profile:
        raise ApiError(403, f"this token may only mint tokens limited to profile {caller.token_profile!r}")
    secret = tokens.mint()
    now = utcnow()
    expires_at = now + timedelta(days=body.expires_in_days or ctx.settings.token_days)
    if caller.token_expires_at is not None:  # a token cannot outlive the token that minted it
        expires_at = min(expires_at, caller.token_expires_at)
    row = ctx.identity.add_token(
        id=uuid.uuid4().hex, lookup=tokens.lookup_key(secret), digest=tokens.digest(secret), owner=owner,
        profile=body.profile, scopes=scopes, note=body.note, created_at=now, expires_at=expires_at)
    return {**token_view(row), "token": secret}


@router.get("/tokens")
def list_tokens(ctx: Ctx, access: Authenticated, owner: str | None = None) -> dict[str, Any]:
    """The caller's tokens; a cluster admin's `owner=user:<name>` lists someone else's (`owner=*`: all)."""
    caller = access.principal
    if owner is not None and owner != caller.name:
        access.require_cluster_admin()
    rows = ctx.identity.list_tokens(None if owner == "*" else owner or caller.name)
    return {"tokens": [token_view(row) for row in rows]}


@router.delete("/tokens/{token_id}")
def revoke_token(token_id: str, ctx: Ctx, access: Authenticated) -> dict[str, Any]:
    row = ctx.identity.get_token(token_id)
    if row is None or not _may_manage(access, row.owner):
        raise ApiError(404, f"token {token_id!r} not found")
    caller = access.principal  # like minting: a token may revoke only tokens no stronger than itself
    if caller.token_scopes is not None and not set(row.scopes or []) <= caller.token_scopes:
        raise ApiError(403, f"this token may only revoke tokens with scopes within {sorted(caller.token_scopes)}")
    if caller.token_profile is not None and row.profile != caller.token_profile:
        raise ApiError(403, f"this token may only revoke tokens limited to profile {caller.token_profile!r}")
    ctx.identity.revoke_token(token_id)
    return token_view(ctx.identity.get_token(token_id) or row)


def _may_manage(access: Access, owner: str) -> bool:
    principal = access.principal
    if owner == principal.name:
        return True
    admin = principal.full_cluster_admin
    access.record("cluster-admin" if admin else "denied cluster-admin")
    return admin
