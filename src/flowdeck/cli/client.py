"""The CLI's HTTP client for the control plane (`FLOWDECK_URL`, default http://127.0.0.1:8080).

Every failure becomes one `CLIError` line: nothing answering at the URL (with the hint to run
`flowdeck up`), an API error (its message, as the server wrote it), or an answer that is not from
a flowdeck control plane. httpx is imported when a client is made, not when the CLI starts.
`parse_time` reads the times both APIs write.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from flowdeck.cli.common import FAILURE, USAGE, CLIError, load_settings

if TYPE_CHECKING:
    import httpx

    from flowdeck.config import Settings

#: HTTP statuses that mean the request itself was wrong (exit 2); any other error exits 1.
_USAGE_STATUSES = frozenset({400, 404, 409, 422})


class ControlPlaneClient:
    """Calls the control plane's API; `request` returns the decoded JSON (or text) of a success."""

    def __init__(self, settings: Settings | None = None, timeout: float = 30.0, *, credentials: bool = True) -> None:
        """`credentials=False`: send no token (`flowdeck login` signs in with a password instead)."""
        import httpx

        settings = settings or load_settings()
        self.url, token = _url_and_token(settings)
        headers = {"Authorization": f"Bearer {token}"} if token and credentials else {}
        self._http = httpx.Client(base_url=self.url, headers=headers,
                                  timeout=httpx.Timeout(timeout, connect=5.0))

    def __enter__(self) -> ControlPlaneClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The decoded answer; with `missing_ok`, None when the server answers 404."""
        response = self.send(method, path, missing_ok=missing_ok, **kwargs)
        if response.status_code == 404:
            return None
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    def send(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> httpx.Response:
        """The successful (or, with `missing_ok`, 404) response, or a `CLIError` saying why there is none."""
        with self._calling():
            response = self._http.request(method, path, **kwargs)
        return self._checked(response, missing_ok)

    @contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """The successful response, its body not read yet (`iter_bytes`), or a `CLIError`."""
        with self._calling(), self._http.stream(method, path, **kwargs) as response:
            if not response.is_success:
                response.read()
            yield self._checked(response, missing_ok=False)

    @contextmanager
    def _calling(self) -> Iterator[None]:
        """Transport failures as one `CLIError` line each."""
        import httpx

        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise CLIError(f"no flowdeck control plane answers at {self.url}; start one with `flowdeck up` "
                           "(or set FLOWDECK_URL)", FAILURE) from None
        except httpx.TimeoutException:
            raise CLIError(f"the control plane at {self.url} did not answer in time", FAILURE) from None
        except httpx.HTTPError as exc:
            raise CLIError(f"cannot reach the control plane at {self.url}: {exc}", FAILURE) from None

    def _checked(self, response: httpx.Response, missing_ok: bool) -> httpx.Response:
        if response.is_success or (missing_ok and response.status_code == 404):
            return response
        raise CLIError(_error_message(response, self.url),
                       USAGE if response.status_code in _USAGE_STATUSES else FAILURE)


def _url_and_token(settings: Settings) -> tuple[str, str | None]:
    """FLOWDECK_URL and FLOWDECK_TOKEN, else what `flowdeck login` stored (its token only for its own URL)."""
    from flowdeck.cli.userconfig import load_config

    config = load_config()
    url = settings.url.rstrip("/") if settings.url else (config.url or settings.control_plane_url).rstrip("/")
    if settings.token:
        return url, settings.token
    return url, config.token if config.url and config.url.rstrip("/") == url else None


def parse_time(value: str | None) -> datetime | None:
    """An RFC 3339 time as the APIs write it (`...Z` or `...+00:00`), or None."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _error_message(response: httpx.Response, url: str) -> str:
    """The API's own message (KFP error body), or what answered instead of a control plane."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"].strip().splitlines()
        if message:
            return message[0]
    return (f"{url} answered HTTP {response.status_code} {response.reason_phrase} to "
            f"{response.request.method} {response.request.url.path}: is it a flowdeck control plane?")
