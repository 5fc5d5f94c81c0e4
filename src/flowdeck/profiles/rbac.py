"""Roles, scopes and the one authorization decision: `Principal.allows(scope, profile)`.

A profile (namespace) binds principals to roles; each role grants a set of scopes:

| scope    | what it permits                                                        | view | edit | admin | owner |
|----------|------------------------------------------------------------------------|------|------|-------|-------|
| `read`   | see the profile's pipelines, runs, experiments, resources, logs       | yes  | yes  | yes   | yes   |
| `write`  | create, change, run, terminate, delete them                            |      | yes  | yes   | yes   |
| `manage` | add and remove contributors (up to the admin's own role)               |      |      | yes   | yes   |
| `own`    | delete the profile, change its owner and quota                         |      |      |       | yes   |

A cluster admin holds every scope in every profile. A token's rights are its own scopes (and
profile, when it is limited to one) intersected with its owner's *current* rights, so removing a
contributor takes effect at once on their tokens. Deny by default: no binding, no access.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

SCOPES = ("read", "write", "manage", "own")
ROLES: dict[str, frozenset[str]] = {
    "view": frozenset({"read"}),
    "edit": frozenset({"read", "write"}),
    "admin": frozenset({"read", "write", "manage"}),
    "owner": frozenset(SCOPES),
}
#: Roles from least to most powerful (an admin may grant a role only up to their own).
ROLE_ORDER = ("view", "edit", "admin", "owner")


def role_rank(role: str) -> int:
    return ROLE_ORDER.index(role)


@dataclass(frozen=True)
class Principal:
    """Who makes a request, with the rights they hold when they make it."""

    #: "user:<name>", "run:<id>" (a run's workload identity), or "anonymous".
    name: str
    #: profile -> role, from the bindings of the user (and their groups).
    roles: Mapping[str, str] = field(default_factory=dict)
    cluster_admin: bool = False
    #: A token's limits: its scopes (None: all the owner has) and its one profile (None: any).
    token_scopes: frozenset[str] | None = None
    token_profile: str | None = None
    #: When the token expires (None: not a token, or it never does): tokens it mints may not outlive it.
    token_expires_at: datetime | None = None
    #: Whether the request authenticated with a browser cookie (CSRF checks apply).
    by_cookie: bool = False

    @property
    def authenticated(self) -> bool:
        return self.name != "anonymous"

    def scopes_in(self, profile: str) -> frozenset[str]:
        """Every scope this principal holds in `profile`."""
        if self.token_profile is not None and profile != self.token_profile:
            return frozenset()
        held = frozenset(SCOPES) if self.cluster_admin else ROLES.get(self.roles.get(profile, ""), frozenset())
        return held if self.token_scopes is None else held & self.token_scopes

    def allows(self, scope: str, profile: str) -> bool:
        """Whether this principal holds `scope` in `profile` right now."""
        return scope in self.scopes_in(profile)

    @property
    def full_cluster_admin(self) -> bool:
        """A cluster admin whose credentials are limited to no profile and to no scope short of `own`."""
        return (self.cluster_admin and self.token_profile is None
                and (self.token_scopes is None or "own" in self.token_scopes))

    def profiles_with(self, scope: str) -> frozenset[str] | None:
        """The profiles where `scope` is held, or None when it is held in every profile."""
        if self.cluster_admin and (self.token_scopes is None or scope in self.token_scopes):
            return None if self.token_profile is None else frozenset({self.token_profile})
        return frozenset(p for p in self.roles if self.allows(scope, p))


ANONYMOUS = Principal(name="anonymous")


def roles_from_bindings(bindings: Iterable[tuple[str, str]]) -> dict[str, str]:
    """profile -> strongest role, from (profile, role) pairs (a user bound directly and via a group)."""
    roles: dict[str, str] = {}
    for profile, role in bindings:
        if role in ROLES and (profile not in roles or role_rank(role) > role_rank(roles[profile])):
            roles[profile] = role
    return roles
