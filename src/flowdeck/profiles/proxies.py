"""Trusted proxies (`FLOWDECK_TRUSTED_PROXIES`): the peers whose headers may speak for the client behind them.

Trusted-header sign-in (`authn`) takes the user from such a peer only; the login throttle
(`logins.client_address`) takes the client's address from its X-Forwarded-For only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def is_trusted_proxy(address: str | None, trusted_proxies: Sequence[str]) -> bool:
    """Whether `address` (an IP address as text) is in one of the `trusted_proxies` networks."""
    if not address or not trusted_proxies:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in _networks(tuple(trusted_proxies)))
