"""Times on the wire: RFC 3339 in UTC, four-digit years, and milliseconds when there is a fraction.

That kfp.Client reads the milliseconds back is tested with the real client in test_kfp_runs.py.
"""

from datetime import datetime, timedelta, timezone

import pytest

from flowdeck.controlplane.kfp.wire import timestamp


@pytest.mark.parametrize(("value", "expected"), [
    (datetime(2026, 11, 29, 5, 53, 52, tzinfo=timezone.utc), "2026-11-29T05:53:52Z"),
    (datetime(2026, 11, 29, 5, 53, 52, 123999, tzinfo=timezone.utc), "2026-11-29T05:53:52.123Z"),  # truncated
    (datetime(2026, 11, 29, 5, 53, 52, 999, tzinfo=timezone.utc), "2026-11-29T05:53:52.000Z"),
    (datetime(1, 1, 1, tzinfo=timezone.utc), "0001-01-01T00:00:00Z"),
    (datetime(2026, 11, 29, 6, 53, 52, tzinfo=timezone(timedelta(hours=1))), "2026-11-29T05:53:52Z"),
    (datetime(2026, 11, 29, 5, 53, 52), "2026-11-29T05:53:52Z"),  # naive values are UTC already
    (None, None),
])
def test_timestamps(value: datetime | None, expected: str | None) -> None:
    assert timestamp(value) == expected
