"""Password hashing: real Argon2id, rehash on new parameters, no user enumeration, length limits."""

import asyncio
import time

import pytest
from argon2 import PasswordHasher

from flowdeck.profiles import passwords


def test_a_password_is_hashed_with_argon2id_and_verified() -> None:
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert passwords.verify_password(stored, "correct horse") == (True, None)
    assert passwords.verify_password(stored, "wrong horse") == (False, None)


def test_a_hash_with_old_parameters_is_replaced_at_the_next_login() -> None:
    old = PasswordHasher(time_cost=1, memory_cost=8192).hash("correct horse")
    valid, new_hash = passwords.verify_password(old, "correct horse")
    assert valid and new_hash and new_hash.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_an_unknown_user_costs_a_verification_too() -> None:
    stored = passwords.hash_password("correct horse")
    started = time.perf_counter()
    passwords.verify_password(stored, "guess")
    known = time.perf_counter() - started
    started = time.perf_counter()
    assert passwords.verify_password(None, "guess") == (False, None)
    unknown = time.perf_counter() - started
    assert unknown > known / 3  # a real Argon2 verification, not an early return


def test_too_short_and_too_long_passwords_are_refused() -> None:
    with pytest.raises(passwords.PasswordError, match="at least 8"):
        passwords.hash_password("short")
    with pytest.raises(passwords.PasswordError, match="1024 bytes"):
        passwords.hash_password("x" * 1025)
    assert passwords.verify_password(passwords.hash_password("x" * 1024), "x" * 2000) == (False, None)


def test_async_hashing_runs_off_the_event_loop() -> None:
    async def main() -> tuple[str, tuple[bool, str | None]]:
        stored = await passwords.hash_password_async("correct horse")
        return stored, await passwords.verify_password_async(stored, "correct horse")

    _, verified = asyncio.run(main())
    assert verified == (True, None)
