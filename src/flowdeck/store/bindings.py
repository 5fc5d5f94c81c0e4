"""Who holds which role in a profile: the `bindings` table, and the rules for changing it.

Every change names who makes it (a `Principal`): they need the `manage` scope in the profile, may
grant or take away only roles up to their own (a profile admin cannot make an owner, nor remove
one; a cluster admin can do anything), and the last owner of a profile can be neither removed nor
demoted, so no profile is left without someone who may manage it. Each change reads the profile's
bindings and writes in one transaction that holds them locked, so concurrent changes cannot get
around that rule (two owners removing each other at once: the second is refused). The Profile kind's controller
writes the owner binding itself (`ensure_owner`, `remove_profile`); those run as the control plane.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from flowdeck.profiles.rbac import ROLE_ORDER, ROLES, Principal, role_rank
from flowdeck.store.identity import identity_changed
from flowdeck.store.models import BindingRow
from flowdeck.store.store import Store

_SUBJECT = re.compile(r"(user|group):[^\s:][^\s]{0,252}")


class BindingError(ValueError):
    """A binding change that is not allowed or not valid; the message says why in one line."""


class BindingDenied(PermissionError):
    """The principal making the change may not make it."""


class BindingNotFound(LookupError):
    """No such binding."""


@dataclass(frozen=True)
class Binding:
    profile: str
    #: "user:<name>" or "group:<name>".
    principal: str
    role: str
    created_by: str | None = None
    created_at: datetime | None = None


def check_subject(principal: str) -> str:
    """A binding's principal: `user:<name>` or `group:<name>`."""
    if not _SUBJECT.fullmatch(principal):
        raise BindingError(f"{principal!r} is not a principal: use user:<name> or group:<name>")
    return principal


def check_role(role: str) -> str:
    if role not in ROLES:
        raise BindingError(f"unknown role {role!r}; use one of {', '.join(ROLE_ORDER)}")
    return role


class Bindings:
    """The bindings repository."""

    def __init__(self, store: Store | Engine) -> None:
        self.engine = store.engine if isinstance(store, Store) else store

    def list(self, *, profile: str | None = None, principal: str | None = None,
             role: str | None = None) -> list[Binding]:
        query = select(BindingRow).order_by(BindingRow.profile, BindingRow.principal)
        if profile is not None:
            query = query.where(BindingRow.profile == profile)
        if principal is not None:
            query = query.where(BindingRow.principal == principal)
        if role is not None:
            query = query.where(BindingRow.role == role)
        with self.engine.connect() as conn:
            return [_binding(row) for row in conn.execute(query)]

    def get(self, profile: str, principal: str) -> Binding | None:
        found = self.list(profile=profile, principal=principal)
        return found[0] if found else None

    def grant(self, profile: str, principal: str, role: str, *, by: Principal) -> Binding:
        """Give `principal` `role` in `profile` (replacing the role they had), as `by` asks."""
        check_subject(principal)
        check_role(role)
        _may_change(by, profile, role)
        with self._changing(profile) as (conn, owners, current):
            held = current.get(principal)
            if held is None:
                try:
                    conn.execute(BindingRow.__table__.insert().values(
                        profile=profile, principal=principal, role=role, created_by=by.name))
                except IntegrityError:
                    raise BindingError(f"{principal} was bound to profile {profile!r} meanwhile; try again") from None
            else:
                _may_change(by, profile, held.role)
                if held.role == "owner" and role != "owner":
                    _keep_an_owner(profile, owners - {principal})
                conn.execute(update(BindingRow).where(BindingRow.profile == profile,
                                                      BindingRow.principal == principal).values(role=role))
        identity_changed()
        return self.get(profile, principal) or Binding(profile, principal, role)

    def revoke(self, profile: str, principal: str, *, by: Principal) -> Binding:
        """Remove `principal`'s role in `profile`, as `by` asks (not the last owner's)."""
        with self._changing(profile) as (conn, owners, current):
            held = current.get(principal)
            if held is None:
                raise BindingNotFound(f"{principal} has no role in profile {profile!r}")
            _may_change(by, profile, held.role)
            if held.role == "owner":
                _keep_an_owner(profile, owners - {principal})
            conn.execute(delete(BindingRow).where(BindingRow.profile == profile, BindingRow.principal == principal))
        identity_changed()
        return held

    def ensure_owner(self, profile: str, principal: str) -> bool:
        """Make `principal` an owner of `profile` (the Profile controller's job); True if anything changed."""
        check_subject(principal)
        current = self.get(profile, principal)
        if current is not None and current.role == "owner":
            return False
        with self.engine.begin() as conn:
            if current is None:
                conn.execute(BindingRow.__table__.insert().values(profile=profile, principal=principal, role="owner",
                                                                   created_by="profile-controller"))
            else:
                conn.execute(update(BindingRow).where(BindingRow.profile == profile,
                                                      BindingRow.principal == principal).values(role="owner"))
        identity_changed()
        return True

    def remove_profile(self, profile: str) -> int:
        """Remove every binding of a profile that is being deleted; how many there were."""
        with self.engine.begin() as conn:
            removed = conn.execute(delete(BindingRow).where(BindingRow.profile == profile)).rowcount
        identity_changed()
        return removed

    @contextmanager
    def _changing(self, profile: str) -> Iterator[tuple[Connection, frozenset[str], dict[str, Binding]]]:
        """A transaction that changes `profile`'s bindings, with its owners and bindings (by principal) read in it.

        What is read stays true until the transaction commits: on SQLite it holds the database's write
        lock from the start (`BEGIN IMMEDIATE`), on PostgreSQL it locks the profile's bindings (`FOR
        UPDATE`), so two owners removing each other at once are served one after the other and the second
        is refused instead of leaving the profile without an owner.
        """
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            query = select(BindingRow).where(BindingRow.profile == profile)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update()
            current = {row.principal: _binding(row) for row in conn.execute(query)}
            owners = frozenset(name for name, held in current.items() if held.role == "owner")
            yield conn, owners, current
            conn.commit()


def _keep_an_owner(profile: str, others: frozenset[str]) -> None:
    """Refuse a change that would leave `profile` without an owner (`others`: the owners it leaves)."""
    if not others:
        raise BindingError(f"profile {profile!r} must keep an owner: add another owner first")


def _may_change(by: Principal, profile: str, role: str) -> None:
    """Refuse unless `by` manages `profile` and holds at least `role` there (cluster admins may do all)."""
    if by.cluster_admin and by.allows("own", profile):
        return
    if not by.allows("manage", profile):
        raise BindingDenied(f"{by.name} may not manage the contributors of profile {profile!r}")
    own = by.roles.get(profile, "view")
    if role_rank(role) > role_rank(own):
        raise BindingDenied(f"{by.name} is {own} of profile {profile!r} and cannot grant or remove the role {role}")


def _binding(row: BindingRow) -> Binding:
    return Binding(profile=row.profile, principal=row.principal, role=row.role, created_by=row.created_by,
                   created_at=row.created_at)
