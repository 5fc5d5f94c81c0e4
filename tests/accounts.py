"""Users and API tokens written straight into a control plane's store, as `flowdeck users`/`tokens` would make them."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path

from flowdeck.profiles import tokens
from flowdeck.store import open_store
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import BindingRow

ALL_SCOPES = ["read", "write", "manage", "own"]


def add_users(home: Path, admins: tuple[str, ...] = (), users: tuple[str, ...] = (),
              roles: Mapping[str, tuple[str, str]] | None = None) -> dict[str, str]:
    """Create the users (admins are cluster admins) in FLOWDECK_HOME `home`, with one full token each, and
    bind them: `roles` maps a user to (profile, role). Returns user -> token. Run it before the server starts."""
    home.mkdir(parents=True, exist_ok=True)
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    identity = IdentityStore(store.engine)
    minted = {}
    try:
        for name in (*admins, *users):
            identity.create_user(name, is_cluster_admin=name in admins)
            if name in (roles or {}):
                profile, role = roles[name]
                with store.engine.begin() as conn:
                    conn.execute(BindingRow.__table__.insert().values(profile=profile, principal=f"user:{name}",
                                                                      role=role))
            token = tokens.mint()
            identity.add_token(id=uuid.uuid4().hex[:12], lookup=tokens.lookup_key(token),
                               digest=tokens.digest(token), owner=f"user:{name}", scopes=ALL_SCOPES)
            minted[name] = token
    finally:
        store.close()
    return minted
