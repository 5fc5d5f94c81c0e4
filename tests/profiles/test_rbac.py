"""Roles and the rules for changing them: who may grant what, and no profile without an owner."""

import threading

import pytest

from flowdeck.profiles.rbac import Principal
from flowdeck.store import Store
from flowdeck.store.bindings import BindingDenied, BindingError, Bindings


def test_roles_grant_their_scopes_and_token_limits_intersect() -> None:
    viewer = Principal(name="user:v", roles={"team": "view"})
    assert viewer.allows("read", "team") and not viewer.allows("write", "team")
    assert not viewer.allows("read", "other")
    token = Principal(name="user:e", roles={"team": "edit", "lab": "edit"}, token_scopes=frozenset({"read"}),
                      token_profile="team")
    assert token.scopes_in("team") == frozenset({"read"}) and token.scopes_in("lab") == frozenset()
    assert token.profiles_with("read") == frozenset({"team"})
    assert Principal(name="user:root", cluster_admin=True).profiles_with("write") is None


def test_an_admin_grants_up_to_their_own_role_and_the_last_owner_stays(store: Store) -> None:
    bindings = Bindings(store)
    root = Principal(name="user:root", cluster_admin=True)
    bindings.grant("team", "user:olga", "owner", by=root)
    admin = Principal(name="user:adam", roles={"team": "admin"})
    bindings.grant("team", "user:adam", "admin", by=root)
    bindings.grant("team", "user:eve", "edit", by=admin)
    assert bindings.get("team", "user:eve").role == "edit"
    with pytest.raises(BindingDenied, match="cannot grant or remove the role owner"):
        bindings.grant("team", "user:eve", "owner", by=admin)
    with pytest.raises(BindingDenied, match="cannot grant or remove the role owner"):
        bindings.revoke("team", "user:olga", by=admin)
    with pytest.raises(BindingDenied, match="may not manage"):
        bindings.grant("team", "user:mallory", "view", by=Principal(name="user:eve", roles={"team": "edit"}))
    with pytest.raises(BindingError, match="must keep an owner"):
        bindings.revoke("team", "user:olga", by=root)
    with pytest.raises(BindingError, match="must keep an owner"):
        bindings.grant("team", "user:olga", "view", by=root)
    with pytest.raises(BindingError, match="not a principal"):
        bindings.grant("team", "olga", "view", by=root)
    bindings.revoke("team", "user:eve", by=admin)
    assert [b.principal for b in bindings.list(profile="team")] == ["user:adam", "user:olga"]


@pytest.mark.parametrize("change", ["revoke", "demote"])
def test_two_owners_removing_each_other_at_once_leave_one_owner(store: Store, change: str) -> None:
    bindings = Bindings(store)
    root = Principal(name="user:root", cluster_admin=True)
    owners = ("user:olga", "user:otto")

    def remove(profile: str, me: str, other: str, barrier: threading.Barrier, refused: list[BindingError]) -> None:
        by = Principal(name=me, roles={profile: "owner"})
        barrier.wait()
        try:
            if change == "revoke":
                bindings.revoke(profile, other, by=by)
            else:
                bindings.grant(profile, other, "view", by=by)
        except BindingError as exc:
            refused.append(exc)

    for round_ in range(15):
        profile = f"team-{round_}"
        for owner in owners:
            bindings.grant(profile, owner, "owner", by=root)
        barrier = threading.Barrier(2)
        refused: list[BindingError] = []
        threads = [threading.Thread(target=remove, args=(profile, *pair, barrier, refused))
                   for pair in (owners, owners[::-1])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(bindings.list(profile=profile, role="owner")) == 1, f"round {round_}: no owner left"
        assert len(refused) == 1 and "must keep an owner" in str(refused[0])
