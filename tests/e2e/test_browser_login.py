"""Signing in with a real browser: headless Chromium (Playwright) against a multi-user `flowdeck up`.

A password user signs in through the login form and out again (the old cookie is then worthless), an
OIDC user signs in through a real OIDC provider process's own login page, a page from another origin
cannot make the signed-in browser write to the control plane, and the 11th wrong password in a
minute is throttled. Each page under test is saved as a screenshot under test-output/browser-login/.

Debian's /usr/bin/chromium is driven (the `browser` fixture in conftest.py).
"""

import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, Response

from helpers import ControlPlane, oidc_provider, start_control_plane, wait_for

USERS = "/apis/flowdeck/v1/users"
TOKENS = "/apis/flowdeck/v1/tokens"
PASSWORD = "correct horse battery"
COOKIE = "flowdeck_login"


def multi_user_server(home: Path, env: dict[str, str] | None = None) -> ControlPlane:
    """`flowdeck up` on loopback with a password user `alice`: from then on it requires credentials."""
    server = start_control_plane(home, env=env)
    made = httpx.post(server.url + USERS, json={"name": "alice", "password": PASSWORD})
    assert made.status_code == 200, made.text
    # the server re-reads whether users exist at most once a second
    assert wait_for(lambda: httpx.get(server.url + TOKENS).status_code == 401, timeout=10)
    return server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlane]:
    server = multi_user_server(tmp_path / "home")
    yield server
    server.stop()


def submit(page: Page, user: str, password: str) -> int:
    """Fill the login form and send it; the HTTP status of the page the browser lands on."""
    page.fill("#username", user)
    page.fill("#password", password)
    with page.expect_navigation() as landed:
        page.click("button[type=submit]")
    assert landed.value is not None
    return landed.value.status


def login_cookie(context: BrowserContext) -> dict:
    found = [cookie for cookie in context.cookies() if cookie["name"] == COOKIE]
    assert len(found) == 1, context.cookies()
    return found[0]


def test_a_password_user_signs_in_and_out_and_the_old_cookie_is_worthless(
        server: ControlPlane, context: BrowserContext, page: Page, shot: Callable[[Page, str], Path]) -> None:
    page.goto(server.url + "/runs?state=SUCCEEDED")  # without a login: the sign-in page, which comes back here
    assert page.url == server.url + "/login?next=%2Fruns%3Fstate%3DSUCCEEDED"
    page.goto(server.url + "/")
    assert page.url == server.url + "/login?next=%2F"
    shot(page, "login-form")

    assert submit(page, "alice", PASSWORD) == 200  # after the 303 back home
    assert page.url == server.url + "/"
    assert re.fullmatch(r"Signed in as alice\s*Sign out", page.inner_text(".account").strip())
    assert "No runs yet" in page.inner_text("main")
    shot(page, "home-signed-in")
    cookie = login_cookie(context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: page scripts cannot read it
    jar = {COOKIE: cookie["value"]}
    assert httpx.get(server.url + TOKENS, cookies=jar).status_code == 200

    with page.expect_navigation():
        page.click("text=Sign out")
    assert page.url == server.url + "/login"
    shot(page, "signed-out")
    assert not [c for c in context.cookies() if c["name"] == COOKIE]
    replayed = httpx.get(server.url + TOKENS, cookies=jar)  # a copy of the cookie kept by an attacker
    assert replayed.status_code == 401, replayed.text
    home = httpx.get(server.url + "/", cookies=jar, headers={"Accept": "text/html"})
    assert home.status_code == 303 and home.headers["location"] == "/login?next=%2F"


def test_the_eleventh_wrong_password_in_a_minute_is_throttled(
        server: ControlPlane, page: Page, shot: Callable[[Page, str], Path]) -> None:
    page.goto(server.url + "/login")
    for attempt in range(10):
        assert submit(page, "alice", f"wrong-{attempt}") == 401
        assert page.inner_text("[role=alert]") == "wrong user name or password"
        assert page.input_value("#username") == "alice"  # the form keeps the name, never the password
        assert page.input_value("#password") == ""
    shot(page, "wrong-password")
    assert submit(page, "alice", "wrong-10") == 429
    assert "too many sign-in attempts for 'alice'" in page.inner_text("[role=alert]")
    shot(page, "throttled")
    assert submit(page, "alice", PASSWORD) == 429  # even the right password waits
    assert httpx.post(server.url + "/login", json={"username": "alice", "password": PASSWORD}).status_code == 429


def test_an_oidc_user_signs_in_on_the_providers_page(
        tmp_path: Path, context: BrowserContext, page: Page, shot: Callable[[Page, str], Path]) -> None:
    claims = {"sub": "u-123", "email": "alice@example.com", "groups": ["ml"]}
    with oidc_provider(claims) as issuer:
        server = start_control_plane(tmp_path / "home", env={
            "FLOWDECK_OIDC_ISSUER": issuer, "FLOWDECK_OIDC_CLIENT_ID": "flowdeck",
            "FLOWDECK_OIDC_CLIENT_SECRET": "not-a-real-secret"})
        try:
            page.goto(server.url + "/")
            page.click("text=Sign in")
            shot(page, "login-form")
            with page.expect_navigation(url=re.compile(re.escape(issuer) + "/.*")):
                page.click("text=Sign in with your organisation")
            assert page.inner_text("h1") == "Authorize Client"  # the provider's own page
            shot(page, "provider-login")
            page.fill("input[name=sub]", "u-123")
            with page.expect_navigation(url=server.url + "/"):
                page.get_by_role("button", name="Authorize", exact=True).click()
            assert "Signed in as alice@example.com" in page.inner_text(".account")
            shot(page, "home-signed-in")
            jar = {COOKIE: login_cookie(context)["value"]}
            assert httpx.get(server.url + TOKENS, cookies=jar).status_code == 200
            assert httpx.get(server.url + USERS, cookies=jar).status_code == 403  # signed in, not an admin
        finally:
            server.stop()


def attacker_page(target: str) -> str:
    """A page on another origin that makes the visiting browser write to `target` (a form and a fetch)."""
    return f"""<!doctype html><title>totally harmless</title><h1>Win a prize</h1>
<form id="form" method="post" action="{target}" enctype="text/plain">
  <input type="hidden" name='{{"note": "csrf-form", "x": "' value='"}}'><button>Claim</button>
</form>
<script>
  function viaFetch() {{
    return fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
                               headers: {{"Content-Type": "text/plain"}}, body: '{{"note": "csrf-fetch"}}'}});
  }}
</script>"""


@pytest.fixture
def attacker(server: ControlPlane) -> Iterator[int]:
    """A second web server on this machine (another origin) serving `attacker_page`; yields its port.

    A real server on loopback, not a routed fake: Chromium refuses requests to loopback from pages of
    unknown address space itself, and then the control plane's own refusal would go untested.
    """
    page = attacker_page(server.url + TOKENS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["same-site-other-port", "cross-site"])
def test_a_page_from_another_origin_cannot_write_with_the_login_cookie(
        server: ControlPlane, context: BrowserContext, page: Page, shot: Callable[[Page, str], Path],
        attacker: int, host: str) -> None:
    target = server.url + TOKENS
    page.goto(server.url + "/login")
    assert submit(page, "alice", PASSWORD) == 200
    own = page.evaluate("""async (url) => (await fetch(url, {method: "POST", headers: {"Content-Type":
        "application/json"}, body: '{"note": "own-page"}'})).status""", TOKENS)
    assert own == 200  # the control plane's own pages may write with the cookie

    page.goto(f"http://{host}:{attacker}/")
    shot(page, "attacker-page")

    def posted(response: Response) -> bool:
        return response.url == target and response.request.method == "POST"

    with page.expect_response(posted) as fetched:
        page.evaluate("viaFetch()")
    assert fetched.value.status == 403
    with page.expect_response(posted) as formed:
        page.click("text=Claim")
    assert formed.value.status == 403
    page.wait_for_url(target)
    assert "cross-site request refused" in page.inner_text("body")
    shot(page, "refused")
    if host == "127.0.0.1":  # the same site: the browser did send the cookie, and the server refused the write
        assert COOKIE in (formed.value.request.header_value("cookie") or "")

    jar = {COOKIE: login_cookie(context)["value"]}
    notes = [token["note"] for token in httpx.get(target, cookies=jar).json()["tokens"]]
    assert notes == ["own-page"]
