"""Workload identity: every run the control plane executes gets its own short-lived API token.

Pipeline code calls the API as its run, never with a user's credentials: the token's owner is
"run:<run_id>", it is limited to the run's profile with the scopes read and write (an `edit`
member's rights there, see `profiles.authn`), and it is revoked when the run stops executing, or
expires after `RUN_TOKEN_LIFETIME` at the latest (a control plane killed mid-run revokes what it
left when it starts again). A resumed or retried run gets a fresh one.

The token reaches tasks as a file, never in their environment, specs or logs: `FLOWDECK_HOME/
run-tokens/<run_id>`, mode 0600 in a 0700 directory, written atomically and deleted when the run
stops. Tasks find it through `KF_PIPELINES_SA_TOKEN_PATH` (what kfp's
`ServiceAccountTokenVolumeCredentials` reads, as a Kubeflow pod reads its projected token) and
`FLOWDECK_TOKEN_PATH`.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from flowdeck.profiles import tokens
from flowdeck.store.identity import IdentityStore
from flowdeck.store.models import ApiTokenRow, utcnow

#: The longest a run's token lives, even if the run is still executing.
RUN_TOKEN_LIFETIME = timedelta(hours=24)
#: The owner prefix of run tokens: "run:<run_id>".
RUN_OWNER = "run:"
#: The scopes of a run's token (within its profile).
RUN_SCOPES = ("read", "write")
TOKEN_DIR = "run-tokens"


@dataclass(frozen=True)
class RunCredential:
    """A run's token, as the store knows it (id) and as its tasks find it (path)."""

    token_id: str
    path: Path

    def env(self) -> dict[str, str]:
        """What tasks need to find the token: paths only, never the token itself."""
        return {"KF_PIPELINES_SA_TOKEN_PATH": str(self.path), "FLOWDECK_TOKEN_PATH": str(self.path)}


class WorkloadTokens:
    """Issues and revokes the tokens of one control plane's runs (it holds the store's lock)."""

    def __init__(self, identity: IdentityStore, home: Path) -> None:
        self.identity = identity
        self.directory = home / TOKEN_DIR

    def issue(self, run_id: str, namespace: str) -> RunCredential:
        """Mint a token for run `run_id` in profile `namespace` and write it to the run's token file."""
        secret = tokens.mint()
        now = utcnow()
        token_id = uuid.uuid4().hex
        self.identity.add_token(id=token_id, lookup=tokens.lookup_key(secret), digest=tokens.digest(secret),
                                owner=RUN_OWNER + run_id, profile=namespace, scopes=list(RUN_SCOPES),
                                note=f"workload identity of run {run_id}", created_at=now,
                                expires_at=now + RUN_TOKEN_LIFETIME)
        try:
            path = self._write(run_id, secret)
        except BaseException:
            self.identity.revoke_token(token_id)
            raise
        return RunCredential(token_id, path)

    def revoke(self, credential: RunCredential) -> None:
        """Revoke the token and delete its file (the run stopped executing)."""
        credential.path.unlink(missing_ok=True)
        self.identity.revoke_token(credential.token_id)

    def revoke_all(self) -> None:
        """Revoke every run token still valid and delete their files: no run executes yet (called at start)."""
        with self.identity.engine.begin() as conn:
            conn.execute(update(ApiTokenRow).where(ApiTokenRow.owner.startswith(RUN_OWNER, autoescape=True),
                                                   ApiTokenRow.revoked_at.is_(None)).values(revoked_at=utcnow()))
        if self.directory.is_dir():
            for leftover in self.directory.iterdir():
                leftover.unlink(missing_ok=True)

    def _write(self, run_id: str, secret: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)  # mkdir's mode is masked by the umask, and an old directory keeps its own
        path = self.directory / run_id
        descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".token-")  # mode 0600
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secret)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
