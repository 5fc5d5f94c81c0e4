"""Signing in on a real control plane: password logins, logout, throttling, tokens; a canary token never leaks."""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from flowdeck.profiles.passwords import hash_password
from flowdeck.store import open_store
from flowdeck.store.identity import IdentityStore
from helpers import ControlPlane, StartControlPlane

USERS = "/apis/flowdeck/v1/users"
TOKENS = "/apis/flowdeck/v1/tokens"
PASSWORD = "correct horse battery"


@pytest.fixture
def server(control_plane: StartControlPlane, tmp_path: Path) -> Iterator[ControlPlane]:
    """A loopback control plane; its first user (a cluster admin) is created in single-user mode."""
    server = control_plane(home=tmp_path / "home")
    made = httpx.post(server.url + USERS, json={"name": "root", "password": PASSWORD, "cluster_admin": True})
    assert made.status_code == 200, made.text
    yield server


@contextmanager
def sign_in(url: str, user: str = "root", password: str = PASSWORD) -> Iterator[httpx.Client]:
    """A browser-like client signed in as `user` (its writes name their origin, as browsers do)."""
    with httpx.Client(base_url=url, headers={"Origin": url}, timeout=30) as client:
        answer = client.post("/login", json={"username": user, "password": password})
        assert answer.status_code == 200, answer.text
        yield client


def test_a_password_login_sets_an_httponly_cookie_and_logout_ends_it(server: ControlPlane) -> None:
    header = httpx.post(server.url + "/login", json={"username": "root", "password": PASSWORD}).headers["set-cookie"]
    assert re.search(r"flowdeck_login=[\w-]{43}; HttpOnly; Max-Age=604800; Path=/; SameSite=lax", header), header
    with sign_in(server.url) as browser:
        assert browser.get(TOKENS).status_code == 200
        old = browser.cookies["flowdeck_login"]
        assert browser.post("/logout", headers={"Accept": "application/json"}).status_code == 200
        stale = httpx.get(server.url + TOKENS, cookies={"flowdeck_login": old})
        assert stale.status_code == 401


def test_each_login_rotates_the_cookie_and_ends_the_previous_one(server: ControlPlane) -> None:
    with sign_in(server.url) as browser:
        first = browser.cookies["flowdeck_login"]
        assert browser.post("/login", json={"username": "root", "password": PASSWORD}).status_code == 200
        second = browser.cookies["flowdeck_login"]
        assert second != first
        assert httpx.get(server.url + TOKENS, cookies={"flowdeck_login": first}).status_code == 401
        assert httpx.get(server.url + TOKENS, cookies={"flowdeck_login": second}).status_code == 200


def test_the_eleventh_wrong_password_in_a_minute_is_throttled(server: ControlPlane) -> None:
    statuses = [httpx.post(server.url + "/login", json={"username": "root", "password": f"wrong-{i}"}).status_code
                for i in range(11)]
    assert statuses == [401] * 10 + [429]
    throttled = httpx.post(server.url + "/login", json={"username": "root", "password": PASSWORD})
    assert throttled.status_code == 429 and "too many sign-in attempts" in throttled.json()["message"]
    # no trusted proxy is configured: a forwarded address is not believed
    forged = httpx.post(server.url + "/login", json={"username": "root", "password": PASSWORD},
                        headers={"X-Forwarded-For": "203.0.113.9"})
    assert forged.status_code == 429
    form = httpx.post(server.url + "/login", data={"username": "nobody", "password": "wrong-password"})
    assert form.status_code == 401 and "wrong user name or password" in form.text  # the page, again


def test_behind_a_trusted_proxy_one_clients_wrong_passwords_do_not_lock_out_another(
        control_plane: StartControlPlane, tmp_path: Path) -> None:
    home = tmp_path / "proxied"
    home.mkdir()
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    IdentityStore(store.engine).create_user("root", is_cluster_admin=True, password_hash=hash_password(PASSWORD))
    store.close()
    server = control_plane(home=home, env={"FLOWDECK_TRUSTED_PROXIES": "127.0.0.1/32"})  # the proxy: this machine

    def sign_in_via_proxy(client: str, password: str, forged: str = "") -> int:
        forwarded = f"{forged}, {client}" if forged else client  # the proxy appends the address it saw
        return httpx.post(server.url + "/login", json={"username": "root", "password": password},
                          headers={"X-Forwarded-For": forwarded}).status_code

    attacker = [sign_in_via_proxy("203.0.113.66", f"wrong-{i}", forged=f"198.51.100.{i}") for i in range(11)]
    assert attacker == [401] * 10 + [429]  # a made-up address left of the proxy's entry changes nothing
    assert sign_in_via_proxy("203.0.113.66", PASSWORD) == 429
    assert sign_in_via_proxy("203.0.113.7", PASSWORD) == 200  # root, from another client behind the same proxy


def test_the_login_page_is_a_form_and_next_stays_on_this_server(server: ControlPlane) -> None:
    page = httpx.get(server.url + "/login", params={"next": "https://evil.example/"})
    assert page.status_code == 200 and '<form method="post" action="/login">' in page.text
    assert 'name="next" value="/"' in page.text
    for target, expected in (("/runs?x=1", "/runs?x=1"), ("//evil.example/", "/"), ("/\\evil.example", "/")):
        answer = httpx.post(server.url + "/login", data={"username": "root", "password": PASSWORD, "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == expected


def test_users_are_managed_by_cluster_admins_and_disabling_revokes_access(server: ControlPlane) -> None:
    with sign_in(server.url) as admin:
        assert admin.post(USERS, json={"name": "bob", "password": PASSWORD}).status_code == 200
        assert admin.post(USERS, json={"name": "bob", "password": PASSWORD}).status_code == 409
        assert admin.post(USERS, json={"name": "carol", "password": "short"}).status_code == 400
        assert [u["name"] for u in admin.get(USERS).json()["users"]] == ["bob", "root"]
        with sign_in(server.url, "bob") as bob:
            token = bob.post(TOKENS, json={"scopes": ["read"]}).json()["token"]
            assert bob.get(USERS).status_code == 403
            bearer = {"Authorization": f"Bearer {token}"}
            assert httpx.get(server.url + TOKENS, headers=bearer).status_code == 200
            assert admin.post(f"{USERS}/bob/disable").json()["disabled"] is True
            assert bob.get(TOKENS).status_code == 401
            assert httpx.get(server.url + TOKENS, headers=bearer).status_code == 401


def test_tokens_are_shown_once_listed_without_secrets_and_revocable(server: ControlPlane) -> None:
    with sign_in(server.url) as admin:
        made = admin.post(TOKENS, json={"scopes": ["read"], "note": "ci", "expires_in_days": 7}).json()
        secret = made["token"]
        assert secret.startswith("fdt_") and made["scopes"] == ["read"] and made["state"] == "active"
        listed = admin.get(TOKENS)
        assert secret not in listed.text and [t["id"] for t in listed.json()["tokens"]] == [made["id"]]
        bearer = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {secret}"})
        # a read-only token cannot mint itself a stronger one
        assert bearer.post(TOKENS, json={"scopes": ["read", "write"]}).status_code == 403
        child = bearer.post(TOKENS, json={"scopes": ["read"], "expires_in_days": 3650})
        assert child.status_code == 200
        assert child.json()["expires_at"] <= made["expires_at"]  # a token cannot outlive the one that minted it
        assert admin.delete(f"{TOKENS}/{made['id']}").json()["state"] == "revoked"
        assert bearer.get(TOKENS).status_code == 401


def test_a_canary_token_never_appears_in_output_logs_errors_or_answers(server: ControlPlane, tmp_path: Path) -> None:
    with sign_in(server.url) as admin:
        canary = admin.post(TOKENS, json={}).json()["token"]
    bearer = {"Authorization": f"Bearer {canary}"}
    answers = [
        httpx.get(server.url + TOKENS, headers=bearer),
        httpx.get(server.url + "/apis/v2beta1/runs", params={"token": canary}, headers=bearer),
        httpx.get(server.url + TOKENS, headers={"Authorization": f"Bearer {canary}x"}),
        httpx.get(server.url + TOKENS, headers={"Authorization": f"Basic {canary}"}),
        httpx.post(server.url + TOKENS, headers=bearer, json={"owner": canary}),
        httpx.post(server.url + TOKENS, headers=bearer, json={"scopes": [canary]}),
        httpx.post(server.url + "/login", json={"username": canary, "password": canary}),
        httpx.get(server.url + f"/apis/v2beta1/runs/{canary}", headers=bearer),
    ]
    for answer in answers:
        assert canary not in answer.text, answer.text
        assert canary[4:20] not in answer.text
    server.stop()
    logged = "\n".join(server.output)
    for path in (tmp_path / "home").rglob("*.log"):
        logged += path.read_text(errors="replace")
    assert canary not in logged and canary[4:20] not in logged
