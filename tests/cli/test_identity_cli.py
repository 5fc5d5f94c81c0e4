"""`flowdeck login|logout|users|tokens` as a user runs them: real subprocesses against a real `flowdeck up`.

Each test starts a control plane with no users (loopback: the implicit admin), creates the first
cluster admin through the CLI, and from then on the server requires credentials. The CLI keeps its
token in `$FLOWDECK_CONFIG` (a file in the test's tmp_path, which must stay 0600); passwords come
on standard input, as a script (or a user typing them) gives them. Errors are one line.
"""

import json
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import ControlPlane, start_control_plane

ROOT_PASSWORD = "correct horse battery staple"
ALICE_PASSWORD = "alice's long passphrase"


class Cli:
    """Runs `flowdeck ...` with one user's configuration file (and no FLOWDECK_* from the test's environment)."""

    def __init__(self, config: Path, url: str | None = None) -> None:
        self.config = config
        self.url = url

    def __call__(self, *args: str, stdin: str = "", url: bool = False) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
        env.update(FLOWDECK_CONFIG=str(self.config), FLOWDECK_HOME=str(self.config.parent / "cli-home"))
        if url and self.url:
            env["FLOWDECK_URL"] = self.url
        # a new session has no terminal: the password prompt reads standard input, as in a script
        return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", *args], input=stdin, env=env,
                              capture_output=True, text=True, timeout=60, start_new_session=True)

    def ok(self, *args: str, stdin: str = "", url: bool = False) -> subprocess.CompletedProcess[str]:
        result = self(*args, stdin=stdin, url=url)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def stored(self) -> dict[str, Any]:
        return json.loads(self.config.read_text())


def one_error_line(result: subprocess.CompletedProcess[str], exit_code: int) -> str:
    """The command failed with `exit_code` and said why in exactly one line, with no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowdeck: error: "), result.stderr
    return lines[0].removeprefix("flowdeck: error: ")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ControlPlane]:
    """A fresh control plane (as tests/controlplane's `control_plane` starts them: `flowdeck up --port 0`)."""
    started = start_control_plane(tmp_path / "server-home")
    yield started
    started.stop()


@pytest.fixture
def root(server: ControlPlane, tmp_path: Path) -> Cli:
    """The first cluster admin, created while the server has no users (the implicit admin), signed in."""
    cli = Cli(tmp_path / "root" / "config.json", server.url)
    cli.ok("users", "create", "root", "--cluster-admin", "--password-stdin", stdin=ROOT_PASSWORD + "\n", url=True)
    result = cli.ok("login", "--url", server.url, "--username", "root", stdin=ROOT_PASSWORD + "\n")
    assert f"signed in to {server.url}" in result.stdout
    assert result.stderr == ""  # plain http, but to this machine: no warning
    return cli


def test_login_keeps_a_token_in_a_private_file_and_logout_revokes_it(server: ControlPlane, root: Cli) -> None:
    assert stat.S_IMODE(root.config.stat().st_mode) == 0o600
    stored = root.stored()
    assert stored["url"] == server.url and stored["token"].startswith("fdt_") and stored["token_id"]
    assert ROOT_PASSWORD not in root.config.read_text()
    assert ROOT_PASSWORD not in "\n".join(server.output)

    listed = json.loads(root.ok("users", "list", "-o", "json").stdout)  # no FLOWDECK_URL: the stored URL
    assert [(u["name"], u["cluster_admin"], u["has_password"]) for u in listed] == [("root", True, True)]
    tokens = json.loads(root.ok("tokens", "list", "-o", "json").stdout)
    assert [(t["id"], t["owner"], t["state"]) for t in tokens] == [(stored["token_id"], "user:root", "active")]
    assert "fdt_" not in root.ok("tokens", "list").stdout  # lists never show a secret

    assert f"signed out of {server.url}" in root.ok("logout").stdout
    assert stat.S_IMODE(root.config.stat().st_mode) == 0o600
    assert root.stored() == {"url": server.url}
    refused = httpx.get(f"{server.url}/apis/flowdeck/v1/tokens", headers={"Authorization": f"Bearer {stored['token']}"})
    assert refused.status_code == 401  # revoked on the server, not only forgotten here
    assert "requires credentials" in one_error_line(root("users", "list"), 1)
    assert "not signed in" in one_error_line(root("logout"), 1)


def test_users_and_tokens_commands(server: ControlPlane, root: Cli, tmp_path: Path) -> None:
    created = root.ok("users", "create", "alice", "--email", "alice@example.com", "--password-stdin",
                      stdin=ALICE_PASSWORD + "\n")
    assert created.stdout.strip() == "user alice created"
    table = root.ok("users", "list").stdout
    assert "alice@example.com" in table and "password" in table
    assert "exists already" in one_error_line(
        root("users", "create", "alice", "--password-stdin", stdin="another one\n"), 2)

    # a cluster admin mints a read-only token for alice; alice stores it with `login --token`
    minted = root.ok("tokens", "create", "--owner", "alice", "--scope", "read", "--note", "ci", "-q")
    secret = minted.stdout.strip()
    assert secret.startswith("fdt_") and minted.stderr == ""
    alice = Cli(tmp_path / "alice" / "config.json", server.url)
    alice.ok("login", "--url", server.url, "--token", secret)
    assert stat.S_IMODE(alice.config.stat().st_mode) == 0o600 and alice.stored()["token"] == secret
    [token] = json.loads(alice.ok("tokens", "list", "-o", "json").stdout)
    assert (token["owner"], token["scopes"], token["note"], token["state"]) == ("user:alice", ["read"], "ci", "active")
    assert "not a cluster admin" in one_error_line(alice("users", "list"), 1)
    assert "scopes within ['read']" in one_error_line(alice("tokens", "create", "--scope", "write"), 1)

    # alice signs in with her password too: a second, full token of her own
    alice_password = Cli(tmp_path / "alice-2" / "config.json")
    alice_password.ok("login", "--url", server.url, "-u", "alice", stdin=ALICE_PASSWORD + "\n")
    everyone = json.loads(root.ok("tokens", "list", "--all", "-o", "json").stdout)
    assert sorted(t["owner"] for t in everyone) == ["user:alice", "user:alice", "user:root"]

    # revoking one token ends it at once; the others keep working
    assert root.ok("tokens", "revoke", token["id"]).stdout.strip() == f"token {token['id']} revoked"
    assert "revoked" in one_error_line(alice("tokens", "list"), 1)
    alice_password.ok("tokens", "list")
    assert "not found" in one_error_line(root("tokens", "revoke", "no-such-token"), 2)

    # a new password ends alice's sign-ins; disabling her keeps her out
    root.ok("users", "passwd", "alice", "--password-stdin", stdin="a brand new passphrase\n")
    assert "revoked" in one_error_line(alice_password("tokens", "list"), 1)
    alice_password.ok("login", "--url", server.url, "-u", "alice", stdin="a brand new passphrase\n")
    assert root.ok("users", "disable", "alice").stdout.startswith("user alice disabled")
    assert "revoked" in one_error_line(alice_password("tokens", "list"), 1)
    assert one_error_line(alice_password("login", "--url", server.url, "-u", "alice",
                                         stdin="a brand new passphrase\n"), 1) == "wrong user name or password"
    [alice_row] = [u for u in json.loads(root.ok("users", "list", "-o", "json").stdout) if u["name"] == "alice"]
    assert alice_row["disabled"] is True
    assert "not found" in one_error_line(root("users", "disable", "nobody"), 2)
    assert "stays valid" in alice.ok("logout").stdout  # a token from elsewhere is forgotten, not revoked
    assert "token" not in alice.stored()


def test_login_errors_are_one_line(server: ControlPlane, root: Cli, tmp_path: Path) -> None:
    someone = Cli(tmp_path / "someone" / "config.json")
    assert one_error_line(someone("login", "--url", server.url, "-u", "root", stdin="wrong\n"), 1) \
        == "wrong user name or password"
    assert one_error_line(someone("login", "--url", server.url, "-u", "nobody", stdin="wrong\n"), 1) \
        == "wrong user name or password"
    assert "invalid bearer token" in one_error_line(someone("login", "--url", server.url, "--token", "fdt_nope"), 1)
    assert "no password" in one_error_line(someone("login", "--url", server.url, "-u", "root", stdin=""), 2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    assert "no flowdeck control plane answers" in one_error_line(someone("login", "--url", nowhere, "--token", "x"), 1)
    assert not someone.config.exists()  # nothing stored after failures


def non_loopback_address() -> str | None:
    """An address of this machine that is not loopback (the one its default route leaves from), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # UDP: nothing is sent
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


def test_up_takes_its_token_from_a_file_and_warns_when_it_is_on_the_command_line(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "cli" / "config.json")
    missing = tmp_path / "no-such-token"
    assert one_error_line(cli("up", "--token-file", str(missing)), 2) == f"--token-file: {missing} does not exist"
    empty = tmp_path / "empty-token"
    empty.write_text(" \n")
    assert one_error_line(cli("up", "--token-file", str(empty)), 2) == f"--token-file: {empty} is empty"
    token_file = tmp_path / "token"
    token_file.write_text("  file-token-canary\n")
    assert one_error_line(cli("up", "--token", "x", "--token-file", str(token_file)), 2) == \
        "give --token or --token-file, not both"

    on_command_line = start_control_plane(tmp_path / "home-1", args=["--token", "argv-token-canary"])
    try:
        output = "\n".join(on_command_line.output)
        assert ("flowdeck: warning: --token on the command line is visible to other local users (ps); set "
                "FLOWDECK_TOKEN or use --token-file instead") in output
        assert "argv-token-canary" not in output
        assert httpx.get(f"{on_command_line.url}/apis/flowdeck/v1/tokens",
                         headers={"Authorization": "Bearer argv-token-canary"}).status_code == 200
    finally:
        on_command_line.stop()
    from_environment = start_control_plane(tmp_path / "home-2", env={"FLOWDECK_TOKEN": "env-token-canary"})
    try:
        assert "warning" not in "\n".join(from_environment.output)
    finally:
        from_environment.stop()

    # from a file: the server needs that token. Bound to another address than loopback, it gets a password
    # sent over plain http, after a warning (over loopback, the fixture `root` shows, without one).
    address = non_loopback_address() or "127.0.0.1"
    served = start_control_plane(tmp_path / "home-3", args=["--host", address, "--token-file", str(token_file)])
    try:
        assert "warning" not in "\n".join(served.output)
        assert httpx.get(f"{served.url}/apis/flowdeck/v1/tokens").status_code == 401
        bearer = {"Authorization": "Bearer file-token-canary"}
        assert httpx.get(f"{served.url}/apis/flowdeck/v1/tokens", headers=bearer).status_code == 200
        made = httpx.post(f"{served.url}/apis/flowdeck/v1/users", headers=bearer,
                          json={"name": "alice", "password": ALICE_PASSWORD})
        assert made.status_code == 200, made.text
        if address != "127.0.0.1":
            warned = Cli(tmp_path / "alice" / "config.json").ok("login", "--url", served.url, "-u", "alice",
                                                               stdin=ALICE_PASSWORD + "\n")
            netloc = served.url.removeprefix("http://")
            assert warned.stderr.strip() == (f"flowdeck: warning: sending your password to {netloc} over plain "
                                             "http: anyone on the network path can read it; use an https:// URL")
            assert f"signed in to {served.url}" in warned.stdout
    finally:
        served.stop()
    unresolvable = cli("login", "--url", "http://flowdeck.invalid:8080", "-u", "alice", stdin=ALICE_PASSWORD + "\n")
    assert unresolvable.returncode == 1 and unresolvable.stderr.startswith(
        "flowdeck: warning: sending your password to flowdeck.invalid:8080 over plain http"), unresolvable.stderr
