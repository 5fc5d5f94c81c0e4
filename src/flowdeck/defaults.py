"""Where the control plane listens unless told otherwise.

Apart from `config.py` so that the CLI can show these defaults in `--help` without importing the
settings machinery (pydantic-settings costs a fifth of a second).
"""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_URL = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
