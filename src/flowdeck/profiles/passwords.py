"""Password hashing: Argon2id (argon2-cffi's defaults, RFC 9106's low-memory profile), nothing home-made.

A hash costs ~90 ms of CPU and 64 MiB of memory, so the async helpers run it on worker threads and
at most `CONCURRENT_HASHES` at once: a flood of logins queues instead of exhausting the machine.
Checking the password of a user that does not exist (or has no password) still verifies against a
dummy hash, so response times do not reveal which accounts exist. Passwords over `MAX_PASSWORD_BYTES`
are refused before hashing.
"""

from __future__ import annotations

from functools import cache

import anyio.to_thread
from anyio import CapacityLimiter
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

#: The longest password accepted (UTF-8 bytes); hashing longer input buys nothing and costs time.
MAX_PASSWORD_BYTES = 1024
#: The shortest password a user may set.
MIN_PASSWORD_CHARS = 8
#: Argon2 hashes computed at once by the async helpers (each uses 64 MiB).
CONCURRENT_HASHES = 4

_hasher = PasswordHasher()


class PasswordError(ValueError):
    """A password that cannot be used (too short, too long); the message says which."""


def check_new_password(password: str) -> None:
    """Refuse a password a user may not set."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise PasswordError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise PasswordError(f"the password must not be longer than {MAX_PASSWORD_BYTES} bytes")


def hash_password(password: str) -> str:
    """The Argon2id PHC string of a new password (checked by `check_new_password`)."""
    check_new_password(password)
    return _hasher.hash(password)


@cache
def _dummy_hash() -> str:
    return _hasher.hash("flowdeck: no such user")


def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """(whether `password` matches `stored`, the hash to store instead when its parameters are outdated).

    `stored` None (no such user, or no password) costs one verification all the same and never matches.
    """
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        return False, None
    try:
        _hasher.verify(stored or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, (_hasher.hash(password) if _hasher.check_needs_rehash(stored) else None)


_limiter: CapacityLimiter | None = None


def _hash_limiter() -> CapacityLimiter:
    global _limiter
    if _limiter is None:  # created in the event loop that first uses it
        _limiter = CapacityLimiter(CONCURRENT_HASHES)
    return _limiter


async def hash_password_async(password: str) -> str:
    """`hash_password` on a worker thread, at most `CONCURRENT_HASHES` at once."""
    check_new_password(password)
    return await anyio.to_thread.run_sync(_hasher.hash, password, limiter=_hash_limiter())


async def verify_password_async(stored: str | None, password: str) -> tuple[bool, str | None]:
    """`verify_password` on a worker thread, at most `CONCURRENT_HASHES` at once."""
    return await anyio.to_thread.run_sync(verify_password, stored, password, limiter=_hash_limiter())
