"""What every command shares: the user-facing error, settings, the store, and finding a run by id.

Commands raise `CLIError` for anything the user can fix; `flowdeck.cli.main` prints it as one line.
SQLAlchemy and pydantic are imported inside functions: `flowdeck --help` must not pay for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from flowdeck.config import Settings
    from flowdeck.store import RunRow, Store

#: Exit status for mistakes in what the user asked (bad arguments, unknown run, invalid pipeline).
USAGE = 2
#: Exit status for a run that did not succeed, or an environment that does not work.
FAILURE = 1


class CLIError(click.ClickException):
    """A problem the user can act on, shown as `flowdeck: error: MESSAGE` (exit 2 unless told)."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def load_settings() -> Settings:
    """The process-wide settings; a malformed FLOWDECK_* variable becomes one line naming it."""
    from pydantic import ValidationError

    from flowdeck.config import get_settings

    try:
        return get_settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        name = "FLOWDECK_" + "_".join(str(part) for part in error.get("loc", ())).upper()
        raise CLIError(f"{name}: {error.get('msg', 'invalid value')}") from None


def safe_url(url: str) -> str:
    """The database URL with its password masked, fit to print."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is printed as given
        return url


@contextmanager
def open_cli_store(settings: Settings | None = None) -> Iterator[Store]:
    """Open the metadata store named by the settings, or fail with one line naming the database."""
    from sqlalchemy.exc import SQLAlchemyError

    from flowdeck.store import open_store

    settings = settings or load_settings()
    url = settings.resolved_database_url
    try:
        store = open_store(url)
    except (SQLAlchemyError, ImportError, OSError) as exc:
        raise CLIError(f"cannot open the run database {safe_url(url)}: {first_line(exc)}", FAILURE) from None
    try:
        yield store
    finally:
        store.close()


def find_run(store: Store, ref: str) -> RunRow:
    """The run whose id is `ref`, or the only one whose id starts with it."""
    from flowdeck.store import RunNotFound

    try:
        return store.get_run(ref)
    except RunNotFound as missing:
        raise CLIError(str(missing)) from None
