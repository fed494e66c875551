"""The web app's socket, bound and listening before anything else starts."""

from __future__ import annotations

import socket

import pytest

from outreach.errors import ConfigError
from outreach.listening import listening_socket


def test_a_port_another_daemon_has_just_taken_is_refused() -> None:
    # Two daemons started together: the first has bound (and listens), the second must fail
    # at once, not later inside uvicorn.
    first = listening_socket("127.0.0.1", 0, daemon=True)
    try:
        port = first.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            listening_socket("127.0.0.1", port, daemon=True)
    finally:
        first.close()


@pytest.mark.parametrize("daemon", [True, False])
def test_the_advice_fits_the_command_that_could_not_listen(daemon: bool) -> None:
    first = listening_socket("127.0.0.1", 0, daemon=True)
    try:
        port = first.getsockname()[1]
        with pytest.raises(ConfigError) as refused:
            listening_socket("127.0.0.1", port, daemon=daemon)
    finally:
        first.close()
    said = str(refused.value)
    assert "choose another port (--port or WEB_PORT) or host (--host or WEB_HOST)" in said
    # 'outreach web' has no --no-web: it is the web app alone.
    assert ("--no-web" in said) == daemon
    assert ("'outreach run', serves the web app itself" in said) == (not daemon)


def test_an_ipv6_host_may_be_written_in_brackets() -> None:
    try:
        sock = listening_socket("[::1]", 0, daemon=True)
    except ConfigError as exc:  # a machine without IPv6 on its loopback
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        assert sock.family == socket.AF_INET6
    finally:
        sock.close()


def test_an_address_this_machine_does_not_have_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"cannot listen on 192\.0\.2\.1:"):
        listening_socket("192.0.2.1", 8000, daemon=True)
