"""`authenticate`: API tokens, login cookies, trusted proxies, the legacy token (real store, SQLite and PostgreSQL)."""

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.profiles import logins, tokens
from flowdeck.profiles.authn import LEGACY_ADMIN, AuthenticationError, authenticate
from flowdeck.profiles.rbac import ANONYMOUS
from flowdeck.store import Store
from flowdeck.store.bindings import Bindings
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import BindingRow, utcnow

Scope = dict[str, Any]


@pytest.fixture
def identity(store: Store) -> IdentityStore:
    identity = IdentityStore(store.engine)
    identity.create_user("alice")
    with store.engine.begin() as conn:
        conn.execute(BindingRow.__table__.insert(), [
            {"profile": "team-a", "principal": "user:alice", "role": "edit", "created_at": utcnow()},
            {"profile": "team-b", "principal": "group:ml", "role": "view", "created_at": utcnow()},
        ])
    return identity


def request(*headers: tuple[str, str], client: str = "127.0.0.1", scheme: str = "http") -> Scope:
    return {"type": "http", "scheme": scheme, "client": (client, 50000),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers]}


def mint(identity: IdentityStore, owner: str = "user:alice", **values: Any) -> str:
    secret = tokens.mint()
    values = {"scopes": ["read", "write"], "expires_at": utcnow() + timedelta(days=1), **values}
    identity.add_token(id=secret[-12:], lookup=tokens.lookup_key(secret), digest=tokens.digest(secret), owner=owner,
                       **values)
    return secret


@pytest.fixture
def auth(identity: IdentityStore) -> Callable[..., Any]:
    def run(scope: Scope, **settings: Any) -> Any:
        return authenticate(scope, identity=identity, settings=Settings(**settings))

    return run


def test_no_credentials_is_anonymous_and_the_legacy_token_is_cluster_admin(auth: Callable[..., Any]) -> None:
    assert auth(request()) is ANONYMOUS
    assert auth(request(("Authorization", "Bearer s3cret")), token="s3cret") is LEGACY_ADMIN
    with pytest.raises(AuthenticationError) as refused:
        auth(request(("Authorization", "Bearer wrong")), token="s3cret")
    assert refused.value.status == 401 and "wrong" not in refused.value.message


def test_a_token_holds_its_scopes_within_its_owners_current_rights(identity: IdentityStore,
                                                                     auth: Callable[..., Any]) -> None:
    reader = mint(identity, scopes=["read"])
    principal = auth(request(("Authorization", f"Bearer {reader}")))
    assert principal.name == "user:alice" and not principal.by_cookie
    assert principal.allows("read", "team-a") and not principal.allows("write", "team-a")
    writer = mint(identity, profile="team-a")
    assert auth(request(("Authorization", f"Bearer {writer}"))).allows("write", "team-a")
    # removing the contributor (through the bindings, as every API does) neuters the token at once
    Bindings(identity.engine).revoke("team-a", "user:alice", by=LEGACY_ADMIN)
    assert not auth(request(("Authorization", f"Bearer {writer}"))).allows("read", "team-a")


@pytest.mark.parametrize("change", ["revoked", "expired", "disabled", "unknown"])
def test_revoked_expired_unknown_tokens_and_disabled_owners_are_refused(
        change: str, identity: IdentityStore, auth: Callable[..., Any]) -> None:
    secret = mint(identity)
    if change == "revoked":
        identity.revoke_token(secret[-12:])
    elif change == "expired":
        secret = mint(identity, expires_at=utcnow() - timedelta(seconds=1))
    elif change == "disabled":
        identity.update_user("alice", revoke_access=False, disabled=True)
    else:
        secret = secret[:-4] + "AAAA"
    with pytest.raises(AuthenticationError) as refused:
        auth(request(("Authorization", f"Bearer {secret}")))
    assert refused.value.status == 401
    assert secret not in refused.value.message and secret[4:] not in refused.value.message


def test_last_used_is_written_at_most_once_a_minute(identity: IdentityStore, auth: Callable[..., Any]) -> None:
    secret = mint(identity)
    auth(request(("Authorization", f"Bearer {secret}")))
    first = identity.get_token(secret[-12:]).last_used_at
    auth(request(("Authorization", f"Bearer {secret}")))
    assert first is not None and identity.get_token(secret[-12:]).last_used_at == first


def test_a_login_cookie_authenticates_until_it_ends(identity: IdentityStore, auth: Callable[..., Any]) -> None:
    settings = Settings()
    value = logins.start_login(identity, "alice", settings, "127.0.0.1")
    principal = auth(request(("Cookie", f"other=1; flowdeck_login={value}")))
    assert principal.name == "user:alice" and principal.by_cookie and principal.allows("write", "team-a")
    # over HTTPS only the __Host- cookie counts (a subdomain could have set the other one)
    assert auth(request(("Cookie", f"flowdeck_login={value}"), scheme="https")) is ANONYMOUS
    assert auth(request(("Cookie", f"__Host-flowdeck_login={value}"), scheme="https")).by_cookie
    logins.end_login(identity, value)
    assert auth(request(("Cookie", f"flowdeck_login={value}"))) is ANONYMOUS


def test_logins_expire_when_idle_and_after_their_lifetime(identity: IdentityStore, auth: Callable[..., Any]) -> None:
    from sqlalchemy import update

    from flowdeck.store.models import LoginRow

    idle = logins.start_login(identity, "alice", Settings(), None)
    with identity.engine.begin() as conn:
        conn.execute(update(LoginRow).where(LoginRow.digest == tokens.digest(idle))
                     .values(last_seen_at=utcnow() - timedelta(hours=13)))
    assert auth(request(("Cookie", f"flowdeck_login={idle}"))) is ANONYMOUS
    old = logins.start_login(identity, "alice", Settings(), None)
    with identity.engine.begin() as conn:
        conn.execute(update(LoginRow).where(LoginRow.digest == tokens.digest(old))
                     .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert auth(request(("Cookie", f"flowdeck_login={old}"))) is ANONYMOUS


def test_changing_the_password_ends_logins_and_revokes_tokens(identity: IdentityStore,
                                                              auth: Callable[..., Any]) -> None:
    value = logins.start_login(identity, "alice", Settings(), None)
    secret = mint(identity)
    identity.update_user("alice", revoke_access=True, password_hash="$argon2id$new")
    assert auth(request(("Cookie", f"flowdeck_login={value}"))) is ANONYMOUS
    with pytest.raises(AuthenticationError):
        auth(request(("Authorization", f"Bearer {secret}")))


def test_two_credentials_at_once_are_a_bad_request(identity: IdentityStore, auth: Callable[..., Any]) -> None:
    value = logins.start_login(identity, "alice", Settings(), None)
    with pytest.raises(AuthenticationError) as refused:
        auth(request(("Authorization", f"Bearer {mint(identity)}"), ("Cookie", f"flowdeck_login={value}")))
    assert refused.value.status == 400 and "only one credential" in refused.value.message


PROXY = {"trusted_proxies": ["10.0.0.0/8"], "trusted_groups_header": "kubeflow-groups"}


def test_the_trusted_header_counts_only_from_a_trusted_proxy(auth: Callable[..., Any]) -> None:
    principal = auth(request(("kubeflow-userid", "alice"), ("kubeflow-groups", "ml, other"), client="10.1.2.3"),
                     **PROXY)
    assert principal.name == "user:alice" and principal.allows("write", "team-a") and principal.allows("read", "team-b")
    with pytest.raises(AuthenticationError) as refused:
        auth(request(("kubeflow-userid", "alice"), client="192.168.1.5"), **PROXY)
    assert refused.value.status == 401 and "trusted proxy" in refused.value.message
    assert auth(request(("kubeflow-userid", "alice"), client="192.168.1.5")) is ANONYMOUS  # mode off: ignored
    prefixed = auth(request(("kubeflow-userid", "accounts.google.com:alice"), client="10.0.0.1"),
                    trusted_proxies=["10.0.0.0/8"], trusted_user_prefix="accounts.google.com:")
    assert prefixed.name == "user:alice"


@pytest.mark.parametrize("headers", [
    [("kubeflow-userid", "alice"), ("kubeflow-userid", "mallory")],
    [("kubeflow-userid", "alice"), ("kubeflow_userid", "mallory")],
    [("kubeflow_userid", "mallory")],
    [("kubeflow-userid", "alice"), ("kubeflow-groups", "ml"), ("kubeflow-groups", "admins")],
])
def test_smuggled_proxy_headers_are_refused(headers: list[tuple[str, str]], auth: Callable[..., Any]) -> None:
    with pytest.raises(AuthenticationError) as refused:
        auth(request(*headers, client="10.0.0.1"), **PROXY)
    assert refused.value.status == 400


def test_tokens_are_redacted_from_every_log_record(caplog: pytest.LogCaptureFixture) -> None:
    tokens.install_log_redaction()
    canary = tokens.mint()
    with caplog.at_level(logging.INFO):
        logging.getLogger("flowdeck.test").info("got %s", canary)
        logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1", "GET",
                                                  f"/x?token={canary}", "1.1", 200)
        try:
            raise ValueError(f"bad {canary}")
        except ValueError:
            logging.getLogger("flowdeck.test").exception("failed")
    assert canary not in caplog.text and tokens.REDACTED in caplog.text
