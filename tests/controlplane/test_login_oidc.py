"""OIDC login against a real OIDC provider process (oidc-provider-mock): PKCE S256, state, nonce, (iss, sub)."""

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from flowdeck.store import open_store
from flowdeck.store.models import BindingRow, LoginRow
from helpers import ControlPlane, StartControlPlane, oidc_provider


@pytest.fixture
def issuer() -> Iterator[str]:
    with oidc_provider({"sub": "u-123", "email": "alice@example.com", "groups": ["ml"]}) as url:
        yield url


def oidc_env(issuer: str) -> dict[str, str]:
    return {"FLOWDECK_OIDC_ISSUER": issuer, "FLOWDECK_OIDC_CLIENT_ID": "flowdeck",
            "FLOWDECK_OIDC_CLIENT_SECRET": "not-a-real-secret"}


@pytest.fixture
def server(control_plane: StartControlPlane, issuer: str) -> ControlPlane:
    return control_plane(env=oidc_env(issuer))


def sign_in(browser: httpx.Client) -> None:
    """The OIDC dance as a browser does it, ending with the login cookie in `browser`."""
    start = browser.get("/oidc/login")
    consent = httpx.post(start.headers["location"], data={"sub": "u-123"})
    assert browser.get(consent.headers["location"]).status_code == 303


def test_an_oidc_login_creates_the_user_once_and_signs_them_in(server: ControlPlane) -> None:
    for attempt in range(2):
        with httpx.Client(base_url=server.url) as browser:
            start = browser.get("/oidc/login", params={"next": "/runs?x=1"})
            assert start.status_code == 302
            query = parse_qs(urlsplit(start.headers["location"]).query)
            assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
            consent = httpx.post(start.headers["location"], data={"sub": "u-123"})  # the provider's form
            callback = browser.get(consent.headers["location"])
            assert callback.status_code == 303 and callback.headers["location"] == "/runs?x=1"
            assert browser.get("/apis/flowdeck/v1/tokens").status_code == 200, attempt
    with httpx.Client(base_url=server.url) as admin:
        users = admin.get("/apis/flowdeck/v1/users")  # not an admin: alice may not list users
        assert users.status_code in (401, 403)


def test_a_callback_without_the_browsers_state_is_refused(server: ControlPlane) -> None:
    with httpx.Client(base_url=server.url) as browser:
        start = browser.get("/oidc/login")
        consent = httpx.post(start.headers["location"], data={"sub": "u-123"})
    forged = httpx.get(consent.headers["location"])  # another browser, without the state cookie
    assert forged.status_code == 401 and "start again" in forged.text
    assert "flowdeck_login" not in forged.headers.get("set-cookie", "")


def test_next_must_stay_on_this_server(server: ControlPlane) -> None:
    with httpx.Client(base_url=server.url) as browser:
        start = browser.get("/oidc/login", params={"next": "https://evil.example/"})
        consent = httpx.post(start.headers["location"], data={"sub": "u-123"})
        assert browser.get(consent.headers["location"]).headers["location"] == "/"


def test_the_providers_groups_claim_gives_the_groups_bindings(control_plane: StartControlPlane, issuer: str,
                                                              tmp_path: Path) -> None:
    home = tmp_path / "groups-home"
    home.mkdir()
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    try:
        with store.engine.begin() as conn:  # group "ml" (the provider's groups claim) edits team-ml
            conn.execute(BindingRow.__table__.insert().values(profile="team-ml", principal="group:ml", role="edit"))
    finally:
        store.close()
    server = control_plane(env=oidc_env(issuer), home=home)
    experiments = "/apis/v2beta1/experiments"
    with httpx.Client(base_url=server.url) as browser:
        sign_in(browser)
        same_site = {"Origin": server.url}
        made = browser.post(experiments, json={"display_name": "by-group", "namespace": "team-ml"}, headers=same_site)
        assert made.status_code == 200, made.text
        listed = browser.get(experiments, params={"namespace": "team-ml"}).json()
        assert [e["display_name"] for e in listed["experiments"]] == ["by-group"]
        assert browser.get(experiments, params={"namespace": "team-other"}).status_code == 404
    store = open_store(f"sqlite:///{home / 'flowdeck.db'}")
    try:
        with store.engine.connect() as conn:
            assert [row.groups for row in conn.execute(LoginRow.__table__.select())] == [["ml"]]
    finally:
        store.close()
