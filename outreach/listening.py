"""The web app's listening socket, bound before anything else starts: a port already in use
(or an address this machine does not have) is one clear error at once, not a traceback
after the daemon has started working."""

from __future__ import annotations

import socket

from outreach.errors import ConfigError


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, for uvicorn to listen on (as uvicorn binds
    its own: reusable address, inheritable by worker processes)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another port "
            "(--port or WEB_PORT) or host (--host or WEB_HOST), or run the daemon without "
            "the web app (--no-web)"
        ) from None
    sock.set_inheritable(True)
    return sock
