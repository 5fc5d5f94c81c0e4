"""Run tokens (`profiles.workload`): an edit member of the run's profile only, in a private file, revocable at once.

The end-to-end path (a pipeline calling the API with its token) is tests/e2e/test_workload_identity.py;
this covers what it cannot reach cheaply: the principal's exact rights, and a restart revoking
the tokens a killed control plane left behind.
"""

import stat
from pathlib import Path

import pytest

from flowdeck.config import Settings
from flowdeck.profiles.authn import AuthenticationError, authenticate
from flowdeck.profiles.rbac import Principal
from flowdeck.profiles.workload import RUN_TOKEN_LIFETIME, WorkloadTokens
from flowdeck.store import Store
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import as_utc, utcnow


def bearer(identity: IdentityStore, token: str) -> Principal:
    scope = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 1),
             "headers": [(b"authorization", f"Bearer {token}".encode())]}
    return authenticate(scope, identity=identity, settings=Settings())


@pytest.fixture
def workload(store: Store, tmp_path: Path) -> WorkloadTokens:
    return WorkloadTokens(IdentityStore(store.engine), tmp_path / "home")


def test_a_run_token_edits_its_own_profile_and_nothing_else(workload: WorkloadTokens) -> None:
    credential = workload.issue("run1", "team-a")
    assert credential.env() == {"KF_PIPELINES_SA_TOKEN_PATH": str(credential.path),
                                "FLOWDECK_TOKEN_PATH": str(credential.path)}
    assert stat.S_IMODE(credential.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(credential.path.parent.stat().st_mode) == 0o700
    principal = bearer(workload.identity, credential.path.read_text())
    assert principal.name == "run:run1" and not principal.cluster_admin
    assert principal.scopes_in("team-a") == {"read", "write"}
    assert principal.scopes_in("team-b") == frozenset() and principal.scopes_in("") == frozenset()
    assert principal.profiles_with("read") == {"team-a"}
    row = workload.identity.get_token(credential.token_id)
    assert row is not None and row.owner == "run:run1" and as_utc(row.expires_at) - utcnow() <= RUN_TOKEN_LIFETIME


def test_the_default_namespace_gets_a_token_for_the_default_profile(workload: WorkloadTokens) -> None:
    principal = bearer(workload.identity, workload.issue("run2", "").path.read_text())
    assert principal.profiles_with("write") == {""} and principal.scopes_in("team-a") == frozenset()


def test_revoking_ends_the_token_and_deletes_its_file(workload: WorkloadTokens) -> None:
    credential = workload.issue("run3", "team-a")
    secret = credential.path.read_text()
    workload.revoke(credential)
    assert not credential.path.exists()
    with pytest.raises(AuthenticationError) as refused:
        bearer(workload.identity, secret)
    assert refused.value.status == 401 and "revoked" in refused.value.message


def test_a_restart_revokes_what_a_killed_control_plane_left(workload: WorkloadTokens) -> None:
    left = [workload.issue(run_id, "team-a") for run_id in ("run4", "run5")]
    secrets = [credential.path.read_text() for credential in left]
    workload.revoke_all()
    assert not any(credential.path.exists() for credential in left)
    for secret in secrets:
        with pytest.raises(AuthenticationError):
            bearer(workload.identity, secret)
    fresh = workload.issue("run4", "team-a")  # the resumed run's new token works
    assert bearer(workload.identity, fresh.path.read_text()).name == "run:run4"
