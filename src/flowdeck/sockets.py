"""`listen`: the listening socket every flowdeck server binds before it starts (control plane, model server, router).

Binding first, in the parent, makes a busy port fail at once with one line, lets `--port 0` pick a free
port whose number is known before the app starts, and hands uvicorn (and its worker processes) a
ready socket.
"""

from __future__ import annotations

import errno
import socket


def listen(host: str, port: int, error: type[Exception],
           in_use_hint: str = "pick another with --port") -> socket.socket:
    """A listening TCP socket on host:port (port 0: any free port); `error(message)` when that fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it
    # every keep-alive response waits ~40 ms (Nagle holding the body behind the headers, delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise error(f"port {port} on {host} is in use ({in_use_hint})") from None
        raise error(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
