"""API tokens: `fdt_` + 256 random bits, stored as a SHA-256 digest, and kept out of every log.

A token is shown once, when it is minted; the store keeps its digest and a short lookup key (the
characters after the prefix) to find the row without a scan. One SHA-256 is enough for 256-bit
random strings: a slow hash protects guessable secrets, and these are not guessable. The `fdt_`
prefix makes a leaked token easy to find and lets `install_log_redaction` blank it out of every
log record the process writes (flowdeck's, uvicorn's access log with its query strings, httpx's).
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from typing import Any

PREFIX = "fdt_"
#: Characters after the prefix that the store indexes to find a token.
LOOKUP_CHARS = 8
#: A token: the prefix and URL-safe base64 (32 random bytes make 43 characters).
_TOKEN = re.compile(r"fdt_[A-Za-z0-9_-]+")
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_-]{43}")
REDACTED = "fdt_[redacted]"


def mint() -> str:
    """A new random token."""
    return PREFIX + secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """The SHA-256 (hex) the store keeps of a token or login cookie."""
    return hashlib.sha256(token.encode()).hexdigest()


def lookup_key(token: str) -> str | None:
    """The store's lookup key of something shaped like a token, or None when it is not one."""
    if not token.startswith(PREFIX) or not _TOKEN_CHARS.fullmatch(token[len(PREFIX):]):
        return None
    return token[len(PREFIX):len(PREFIX) + LOOKUP_CHARS]


def redact(text: str) -> str:
    """`text` with every token replaced by `fdt_[redacted]`."""
    return _TOKEN.sub(REDACTED, text) if PREFIX in text else text


def _redact_value(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Blank tokens out of a log record's message, arguments and exception text."""
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_redact_value(arg) for arg in record.args)
    elif isinstance(record.args, dict):
        record.args = {key: _redact_value(arg) for key, arg in record.args.items()}
    if record.exc_info and record.exc_info[1] is not None and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


class RedactTokens(logging.Filter):
    """A logging filter that blanks tokens out of every record it sees (and drops none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


_installed = False


def install_log_redaction() -> None:
    """Redact tokens from every log record created in this process from now on (idempotent).

    A filter on a logger misses the records of its child loggers, and one on handlers misses handlers
    configured later (uvicorn's); wrapping the log record factory reaches every record, once.
    """
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()
    redactor = RedactTokens()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redactor.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = True
