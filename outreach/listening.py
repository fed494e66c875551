"""The web app's listening socket, bound before anything else starts: a port already in use
(or an address this machine does not have) is one clear error at once, not a traceback
after the daemon has started working."""

from __future__ import annotations

import socket

from outreach.errors import ConfigError

BACKLOG = 2048  # uvicorn's default


def listening_socket(host: str, port: int, *, daemon: bool) -> socket.socket:
    """A TCP socket bound to ``host``:``port``, for uvicorn to listen on (as uvicorn binds
    its own: reusable address, inheritable by worker processes). ``daemon``: for
    ``outreach run``, which can work without the web app, rather than ``outreach web``."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1]
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bare, port))
        # Listening at once: with SO_REUSEADDR a second bind to a port that no one listens
        # on yet succeeds, and two daemons started together would both pass.
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        other = (
            ", or run the daemon without the web app (--no-web)"
            if daemon
            else " (a daemon, 'outreach run', serves the web app itself)"
        )
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another port "
            f"(--port or WEB_PORT) or host (--host or WEB_HOST){other}"
        ) from None
    sock.set_inheritable(True)
    return sock
