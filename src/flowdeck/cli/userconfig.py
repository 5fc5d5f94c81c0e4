"""The user's CLI configuration: which control plane, the API token for it, the default namespace.

Kept in `~/.config/flowdeck/config.json` (or `$FLOWDECK_CONFIG`) as `{"url", "token", "namespace", "token_id"}`.
It holds a secret, so it is written with mode 0600, atomically (a temporary file in the same
directory, renamed over the old one): a crash never leaves half a file, and the token is never
readable by others, not even for a moment. Environment variables (FLOWDECK_URL, FLOWDECK_TOKEN) win
over it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from flowdeck.cli.common import CLIError


@dataclass
class UserConfig:
    url: str | None = None
    token: str | None = None
    namespace: str | None = None
    #: The server's id of `token` (minted by `flowdeck login`), so `flowdeck logout` can revoke it.
    token_id: str | None = None


def config_path() -> Path:
    configured = os.environ.get("FLOWDECK_CONFIG")
    if configured:
        return Path(configured).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "flowdeck" / "config.json"


def load_config(path: Path | None = None) -> UserConfig:
    """The stored configuration (empty when there is none); one line naming the file when it is unreadable."""
    path = path or config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return UserConfig()
    except (OSError, ValueError) as exc:
        raise CLIError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise CLIError(f"cannot read {path}: not a JSON object")
    return UserConfig(**{key: data.get(key) if isinstance(data.get(key), str) else None
                         for key in ("url", "token", "namespace", "token_id")})


def save_config(config: UserConfig, path: Path | None = None) -> Path:
    """Write `config` (mode 0600, atomically); returns where."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data = json.dumps({key: value for key, value in asdict(config).items() if value is not None}, indent=2)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(data + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
