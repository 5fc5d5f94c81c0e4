"""`flowdeck up` itself: one control plane per store, clear one-line errors, a clean stop."""

import os
import socket
import subprocess
import sys
from pathlib import Path

from helpers import StartControlPlane


def up(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FLOWDECK_HOME": str(home)}
    env.pop("FLOWDECK_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "flowdeck.cli.main", "up", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_a_second_control_plane_on_the_same_store_is_refused(control_plane: StartControlPlane,
                                                             tmp_path: Path) -> None:
    first = control_plane(home=tmp_path / "home")
    second = up(tmp_path / "home", "--port", "0")
    assert second.returncode == 1
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert f"another flowdeck control plane (pid {first.process.pid}) serves" in second.stderr


def test_a_busy_port_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = up(tmp_path / "home", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"flowdeck: error: port {port} on 127.0.0.1 is in use (is another "
                                     "`flowdeck up` running? pick another with --port)")


def test_sigterm_stops_cleanly_and_frees_the_store(control_plane: StartControlPlane, tmp_path: Path) -> None:
    first = control_plane(home=tmp_path / "home")
    assert first.stop() == 0
    assert not any("Traceback" in line for line in first.output)
    again = control_plane(home=tmp_path / "home")  # the lock went with the process
    assert again.url
