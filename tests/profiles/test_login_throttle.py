"""The login throttle: failed passwords count per (account, address), per account and per address; successes
never; a trusted proxy's X-Forwarded-For names the client. (Over HTTP: tests/controlplane/test_login.py.)"""

from flowdeck.profiles.logins import LoginThrottle, client_address


def fail(throttle: LoginThrottle, user: str, address: str) -> str | None:
    """One wrong password; the refusal if it was throttled instead."""
    with throttle.attempt(user, address) as attempt:
        if attempt.refused is None:
            attempt.failed()
        return attempt.refused


def succeed(throttle: LoginThrottle, user: str, address: str) -> str | None:
    with throttle.attempt(user, address) as attempt:
        return attempt.refused


def test_ten_failures_a_minute_close_that_account_to_that_address_only() -> None:
    throttle = LoginThrottle()
    assert [fail(throttle, "alice", "203.0.113.1") for _ in range(10)] == [None] * 10
    refused = succeed(throttle, "alice", "203.0.113.1")  # the 11th attempt in a minute, right or wrong
    assert refused == "too many sign-in attempts for 'alice' (at most 10/minute failed); wait a minute and try again"
    assert succeed(throttle, "alice", "198.51.100.7") is None  # alice herself, elsewhere, is not locked out
    assert fail(throttle, "bob", "203.0.113.1") is None


def test_successful_sign_ins_are_never_counted() -> None:
    throttle = LoginThrottle()
    assert all(succeed(throttle, "alice", "203.0.113.1") is None for _ in range(150))
    assert [fail(throttle, "alice", "203.0.113.1") for _ in range(10)] == [None] * 10


def test_guesses_spread_over_many_addresses_close_the_account_after_300_an_hour() -> None:
    throttle = LoginThrottle()
    for bot in range(30):
        assert [fail(throttle, "alice", f"10.0.0.{bot}") for _ in range(10)] == [None] * 10
    refused = succeed(throttle, "alice", "198.51.100.7")
    assert refused == ("too many sign-in attempts for 'alice' from several addresses (at most 300/hour failed); "
                       "try again later")
    assert succeed(throttle, "bob", "198.51.100.7") is None


def test_one_address_guessing_many_accounts_is_closed_after_100_an_hour() -> None:
    throttle = LoginThrottle()
    assert all(fail(throttle, f"user{n}", "203.0.113.1") is None for n in range(100))
    refused = succeed(throttle, "someone-else", "203.0.113.1")
    assert refused == "too many sign-in attempts from your address (at most 100/hour failed); try again later"
    assert succeed(throttle, "someone-else", "203.0.113.2") is None


def test_attempts_still_being_checked_count_so_parallel_guesses_are_throttled() -> None:
    throttle = LoginThrottle()
    pending = [throttle.attempt("alice", "203.0.113.1") for _ in range(10)]
    attempts = [context.__enter__() for context in pending]
    assert all(attempt.refused is None for attempt in attempts)
    assert succeed(throttle, "alice", "203.0.113.1") is not None
    for context in pending:  # they all turn out right: nothing is counted
        context.__exit__(None, None, None)
    assert succeed(throttle, "alice", "203.0.113.1") is None


def test_the_client_address_comes_from_x_forwarded_for_only_through_a_trusted_proxy() -> None:
    proxies = ["10.0.0.0/8"]
    assert client_address("198.51.100.7", ["203.0.113.1"], proxies) == "198.51.100.7"  # not a proxy: ignored
    assert client_address("10.0.0.2", ["203.0.113.1"], []) == "10.0.0.2"  # no proxies configured
    assert client_address("10.0.0.2", ["203.0.113.1"], proxies) == "203.0.113.1"
    # the entries a client wrote itself (left of the last untrusted one) are not believed
    assert client_address("10.0.0.2", ["1.1.1.1, 203.0.113.1, 10.0.0.9"], proxies) == "203.0.113.1"
    assert client_address("10.0.0.2", ["1.1.1.1", "203.0.113.1"], proxies) == "203.0.113.1"
    assert client_address("10.0.0.2", ["10.0.0.3, 10.0.0.9"], proxies) == "10.0.0.3"
    assert client_address("10.0.0.2", [], proxies) == "10.0.0.2"
