"""`IdentityStore`: the `users`, `api_tokens` and `logins` tables, and the bindings authentication reads.

Authentication reads these on every request, so reads are single indexed queries; the only writes
on the request path (a token's `last_used_at`, a login's `last_seen_at`) are conditional updates
that touch a row at most once per `ACTIVITY_RESOLUTION`. Disabling a user or changing their
password revokes their logins and tokens in the same transaction.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from flowdeck.store.models import ApiTokenRow, BindingRow, LoginRow, UserRow, utcnow

#: What a user name may look like (an email address fits; so do "alice" and "alice.smith").
USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,252}")
#: How stale `last_used_at` / `last_seen_at` may be: one write per token or login per minute at most.
ACTIVITY_RESOLUTION = timedelta(seconds=60)
#: How long "there are no users" is believed before the table is read again (another process may add one).
_NO_USERS_TTL = 1.0
#: Principals remembered per credential (see `IdentityStore.recall`), at most this many.
_REMEMBERED = 4096

#: Bumped by every write to users, tokens, logins or bindings in this process. One control plane serves
#: a store (store/ownership.py), and every change of identity goes through its API, so a principal
#: remembered at the current generation is exactly what the tables would say now.
_generation = 0


def identity_changed() -> None:
    """Forget every remembered principal (call after any write that can change who may do what)."""
    global _generation
    _generation += 1


class UserExists(Exception):
    """A user with this name, or with this OIDC identity, exists already."""


class IdentityStore:
    """Users, API tokens and logins. One per process and database (it caches whether users exist)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._has_users = False
        self._checked_at = float("-inf")
        self._remembered: dict[str, tuple[int, datetime | None, Any]] = {}
        self._used: dict[str, datetime] = {}

    # -- remembered principals -------------------------------------------------------------------
    @staticmethod
    def generation() -> int:
        """The identity generation now: read it *before* reading what a principal is made of."""
        return _generation

    def remember(self, credential: str, principal: Any, expires_at: datetime | None, read_at: int) -> None:
        """Keep the principal a credential (its digest) stands for, until identity changes or it expires.

        `read_at` is the generation taken before the tables were read: if anything changed since (a
        revocation racing this request), the principal may be stale and is not kept.
        """
        if read_at != _generation:
            return
        if len(self._remembered) >= _REMEMBERED:
            self._remembered.clear()
        self._remembered[credential] = (read_at, expires_at, principal)

    def recall(self, credential: str, now: datetime) -> Any | None:
        """The principal remembered for `credential`, if nothing changed since and it has not expired."""
        found = self._remembered.get(credential)
        if found is None or found[0] != _generation or (found[1] is not None and found[1] <= now):
            return None
        return found[2]

    # -- users ---------------------------------------------------------------------------------
    def has_users(self) -> bool:
        """Whether any user exists (cached: once true it stays true; users are disabled, never deleted)."""
        if not self._has_users and time.monotonic() - self._checked_at > _NO_USERS_TTL:
            with self.engine.connect() as conn:
                self._has_users = bool(conn.execute(select(exists().select_from(UserRow))).scalar())
            self._checked_at = time.monotonic()
        return self._has_users

    def create_user(self, name: str, **values: Any) -> UserRow:
        """Insert a user (columns of `UserRow` as keywords); `UserExists` when the name or OIDC identity is taken."""
        values = {"is_cluster_admin": False, "disabled": False, "created_at": utcnow(), **values, "name": name}
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(UserRow), [values])
        except IntegrityError:
            raise UserExists(f"user {name!r} exists already") from None
        self._has_users = True
        identity_changed()
        return UserRow(**values)

    def get_user(self, name: str) -> UserRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(UserRow, name)

    def user_by_oidc(self, issuer: str, subject: str) -> UserRow | None:
        query = select(UserRow).where(UserRow.oidc_issuer == issuer, UserRow.oidc_subject == subject)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).one_or_none()

    def list_users(self) -> Sequence[UserRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(UserRow).order_by(UserRow.name)).all()

    def update_user(self, name: str, *, revoke_access: bool = False, **values: Any) -> bool:
        """Change a user's columns; with `revoke_access`, also end their logins and revoke their tokens.

        Returns whether the user exists.
        """
        now = utcnow()
        with self.engine.begin() as conn:
            found = conn.execute(update(UserRow).where(UserRow.name == name).values(**values)).rowcount
            if found and revoke_access:
                conn.execute(update(LoginRow).where(LoginRow.user == name, LoginRow.revoked_at.is_(None))
                             .values(revoked_at=now))
                conn.execute(update(ApiTokenRow).where(ApiTokenRow.owner == f"user:{name}",
                                                       ApiTokenRow.revoked_at.is_(None)).values(revoked_at=now))
        identity_changed()
        return bool(found)

    def roles_of(self, principals: Iterable[str]) -> list[tuple[str, str]]:
        """(profile, role) for every binding of these principals ("user:<name>", "group:<name>")."""
        query = select(BindingRow.profile, BindingRow.role).where(BindingRow.principal.in_(list(principals)))
        with self.engine.connect() as conn:
            return [(profile, role) for profile, role in conn.execute(query)]

    # -- API tokens ----------------------------------------------------------------------------
    def add_token(self, **values: Any) -> ApiTokenRow:
        values = {"created_at": utcnow(), **values}
        with self.engine.begin() as conn:
            conn.execute(insert(ApiTokenRow), [values])
        return ApiTokenRow(**values)

    def tokens_by_lookup(self, lookup: str) -> Sequence[ApiTokenRow]:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(select(ApiTokenRow).where(ApiTokenRow.lookup == lookup)).all()

    def get_token(self, token_id: str) -> ApiTokenRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(ApiTokenRow, token_id)

    def list_tokens(self, owner: str | None = None) -> Sequence[ApiTokenRow]:
        query = select(ApiTokenRow).order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id)
        if owner is not None:
            query = query.where(ApiTokenRow.owner == owner)
        with Session(self.engine, expire_on_commit=False) as session:
            return session.scalars(query).all()

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token (again: no-op); returns whether it exists."""
        with self.engine.begin() as conn:
            conn.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id, ApiTokenRow.revoked_at.is_(None))
                         .values(revoked_at=utcnow()))
            found = conn.execute(select(exists().where(ApiTokenRow.id == token_id))).scalar() or False
        identity_changed()
        return found

    def token_used(self, token_id: str, when: datetime) -> None:
        """Record a use, unless one was recorded less than `ACTIVITY_RESOLUTION` ago (known here: no query)."""
        last = self._used.get(token_id)
        if last is not None and when - last < ACTIVITY_RESOLUTION:
            return
        if len(self._used) >= _REMEMBERED:
            self._used.clear()
        self._used[token_id] = when
        stale = or_(ApiTokenRow.last_used_at.is_(None), ApiTokenRow.last_used_at < when - ACTIVITY_RESOLUTION)
        with self.engine.begin() as conn:
            conn.execute(update(ApiTokenRow).where(ApiTokenRow.id == token_id, stale).values(last_used_at=when))

    # -- browser logins ------------------------------------------------------------------------
    def add_login(self, **values: Any) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(LoginRow), [values])

    def get_login(self, digest: str) -> LoginRow | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.get(LoginRow, digest)

    def login_seen(self, digest: str, when: datetime) -> None:
        """Record activity, unless some was recorded less than `ACTIVITY_RESOLUTION` ago (known here: no query)."""
        last = self._used.get(digest)
        if last is not None and when - last < ACTIVITY_RESOLUTION:
            return
        if len(self._used) >= _REMEMBERED:
            self._used.clear()
        self._used[digest] = when
        with self.engine.begin() as conn:
            conn.execute(update(LoginRow).where(LoginRow.digest == digest,
                                                LoginRow.last_seen_at < when - ACTIVITY_RESOLUTION)
                         .values(last_seen_at=when))

    def end_login(self, digest: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(LoginRow).where(LoginRow.digest == digest, LoginRow.revoked_at.is_(None))
                         .values(revoked_at=utcnow()))
        identity_changed()
