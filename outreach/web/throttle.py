"""The sign-in throttle: failed sign-ins by name, and by the client's address, in a sliding
window, in the database, so that every web process (several machines on one PostgreSQL)
counts the same attempts and a restart forgets none.

By name, a few failures hold the name back (a password guessed on one account); by
address, more failures over any names hold that address back (one password tried on many
accounts), whatever names it tries next.

An attempt is reserved before its password is checked (a ``pending`` row) and counts as a
failure until it ends: ``failed`` confirms it, ``succeeded`` deletes it with the name's
failures. The count and the reservation are made under a lock on the name held to the end
of the transaction (PostgreSQL: an advisory lock; SQLite: its one writer's lock), and
likewise under a lock on the address, so a name never has more than ``failures`` attempts
failed or being checked within the window, nor an address more than ``address_failures``,
however many arrive at once, wherever. A reservation left by a process that died counts
only within the window, like a failure.

Names and addresses are kept as SHA-256 hashes, not as typed or seen. Attempts past the
window count for nothing: each reservation deletes a batch of them, so the table holds
about the attempts of the last window.
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, Integer, delete, func, insert, literal, select, update

from outreach.clock import Clock, SystemClock
from outreach.models import SignInAttempt, SignInState
from outreach.store import delete_unheld, hold_writes, table_of

sign_in_attempts = table_of(SignInAttempt)
_LOCK_SPACE = 0x7369676E  # "sign": the first key of the advisory locks on names
_ADDRESS_LOCK_SPACE = 0x61646472  # "addr": on addresses, apart from the names'
_FORGOTTEN_AT_ONCE = 1_000  # past attempts deleted by one reservation, at most


class SignInThrottle:
    """Failed sign-ins by name and by address, in a sliding window, and the attempts being
    checked.

    An attempt is reserved (``reserve``) before its password is checked and counts as a
    failure until it ends: ``failed`` confirms it, ``succeeded`` releases it. So a name
    never has more than ``failures`` attempts failed or being checked within the window,
    nor an address more than ``address_failures`` over all names, however many arrive at
    once, in however many processes.
    """

    def __init__(
        self,
        engine: Engine,
        failures: int = 5,
        window_seconds: float = 900,
        clock: Clock | None = None,
        address_failures: int = 20,
    ) -> None:
        self.engine = engine
        self.failures, self.window = failures, timedelta(seconds=window_seconds)
        self.address_failures = address_failures
        # Real time, whatever clock the app runs on (a demo's runs faster): a person waits.
        self.clock = clock or SystemClock()

    def held(self, username: str) -> bool:
        with self.engine.connect() as connection:
            return _counted(connection, name_key(username), self._since()) >= self.failures

    def address_held(self, address: str) -> bool:
        with self.engine.connect() as connection:
            counted = _counted(connection, address_key(address), self._since(), by_address=True)
            return counted >= self.address_failures

    def reserve(self, username: str, address: str | None = None) -> int | None:
        """Take a place for one attempt from ``address`` (the client's; None if unknown),
        to be ended by ``failed`` or ``succeeded`` with the number returned; ``None``
        (nothing taken) if the name or the address is held back."""
        key, now = name_key(username), self.clock.now()
        where = _key_of(address)
        with self.engine.begin() as connection:
            # Always the name first, then the address: no two attempts wait for each other.
            _lock_key(connection, key)
            if where is not None:
                _lock_key(connection, where, _ADDRESS_LOCK_SPACE)
            _forget_before(connection, now - self.window)
            if _counted(connection, key, now - self.window) >= self.failures:
                return None
            if where is not None:
                counted = _counted(connection, where, now - self.window, by_address=True)
                if counted >= self.address_failures:
                    return None
            reserved = connection.execute(
                insert(sign_in_attempts)
                .values(name_key=key, address_key=where, state=SignInState.PENDING, at=now)
                .returning(sign_in_attempts.c.id)
            ).scalar_one()
            return int(reserved)

    def failed(
        self, username: str, reservation: int | None = None, address: str | None = None
    ) -> None:
        """A failure: confirms the attempt's reservation, if it had one (and it is still
        there: past the window it may have been deleted); else one is recorded, from
        ``address``."""
        key, now = name_key(username), self.clock.now()
        with self.engine.begin() as connection:
            confirmed = 0
            if reservation is not None:
                confirmed = connection.execute(
                    update(sign_in_attempts)
                    .where(sign_in_attempts.c.id == reservation, sign_in_attempts.c.name_key == key)
                    .values(state=SignInState.FAILED, at=now)
                ).rowcount
            if not confirmed:
                connection.execute(
                    insert(sign_in_attempts).values(
                        name_key=key,
                        address_key=_key_of(address),
                        state=SignInState.FAILED,
                        at=now,
                    )
                )

    def succeeded(
        self, username: str, reservation: int | None = None, address: str | None = None
    ) -> None:
        """The right password: releases the attempt's reservation and forgets the name's
        failures made from ``address`` (a person who mistyped goes on afresh); other
        attempts under way keep theirs. Failures on the name from other addresses still
        count, for the name and for their addresses: someone guessing gains nothing when
        the name's owner signs in."""
        key = name_key(username)
        ended = (sign_in_attempts.c.state == SignInState.FAILED) & (
            sign_in_attempts.c.address_key.is_not_distinct_from(_key_of(address))
        )
        if reservation is not None:
            ended |= sign_in_attempts.c.id == reservation
        with self.engine.begin() as connection:
            _lock_key(connection, key)
            connection.execute(
                delete(sign_in_attempts).where(sign_in_attempts.c.name_key == key).where(ended)
            )

    def released(self, username: str, reservation: int) -> None:
        """An attempt whose password was not checked (the server was busy): its place is
        given back, as if it had not been made."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(sign_in_attempts).where(
                    sign_in_attempts.c.id == reservation,
                    sign_in_attempts.c.name_key == name_key(username),
                    sign_in_attempts.c.state == SignInState.PENDING,
                )
            )

    def _since(self) -> datetime:
        return self.clock.now() - self.window


def name_key(username: str) -> str:
    # Any text may be typed as a name: keep a fixed-size key, not the text.
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()


def address_key(address: str) -> str:
    return hashlib.sha256(b"address\0" + _one_client(address).encode()).hexdigest()


def _one_client(address: str) -> str:
    """One text for a client however it may write its address: an IPv4 address mapped
    into IPv6 is that IPv4 address, and an IPv6 address counts by its /64 network (one
    subscriber's, whose host part the client picks freely). What is not an address (a
    Unix socket's "") stands as written."""
    text = address.strip().lower()
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip)
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def _key_of(address: str | None) -> str | None:
    return None if address is None else address_key(address)


def _lock_key(connection: Connection, key: str, space: int = _LOCK_SPACE) -> None:
    """The name's (or the address's) attempts are counted and written one transaction
    after the other, from here to the end of the transaction."""
    if connection.dialect.name == "postgresql":
        # Two 32-bit keys: a space of their own, apart from any single-key advisory lock.
        # Keys that share their first 32 bits only wait for each other.
        number = int(key[:8], 16) - 2**31
        connection.execute(
            select(func.pg_advisory_xact_lock(literal(space, Integer), literal(number, Integer)))
        )
        return
    hold_writes(connection)  # SQLite has one writer at a time: its lock serves


def _counted(connection: Connection, key: str, since: datetime, *, by_address: bool = False) -> int:
    """The name's (or the address's) attempts failed or being checked within the window."""
    column = sign_in_attempts.c.address_key if by_address else sign_in_attempts.c.name_key
    return int(
        connection.execute(
            select(func.count())
            .select_from(sign_in_attempts)
            .where(column == key, sign_in_attempts.c.at >= since)
        ).scalar_one()
    )


def _forget_before(connection: Connection, since: datetime) -> None:
    """Deletes attempts past the window, any name's (a batch at a time)."""
    past = select(sign_in_attempts.c.id).where(sign_in_attempts.c.at < since)
    delete_unheld(connection, sign_in_attempts, past.limit(_FORGOTTEN_AT_ONCE))
