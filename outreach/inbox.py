"""The agents' inbox: debtors' replies waiting for someone, newest first, and handling them.

A reply pauses its account's cadence (``outreach.replies``). Handling the account's last
open reply ends that pause: the account is due again at once, and compliance decides
what may follow (a dispute or cease the reply recorded still blocks). A pause an agent
set for another reason is left alone.

A message from an address several accounts have (a phone two accounts share) is stored
once per account, each copy naming the same provider event (``copies``): it is one
message, handled (and answered, ``outreach.answers``) once for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, exists, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from outreach.compliance_store import attempts, inbox_messages
from outreach.errors import NotFoundError
from outreach.models import InboxStatus
from outreach.replies import REPLY_PAUSE_REASON
from outreach.store import accounts, hold_writes, lock_accounts


@dataclass(frozen=True)
class InboxItem:
    id: int
    account_id: int | None  # None: an unknown sender
    reference: str | None
    flag: str | None  # the account's, if an agent must look at it
    channel: str
    from_address: str
    subject: str | None
    body: str
    intent: str | None
    received_at: datetime
    # The message it answers. Under no account, a message that names one of ours from an
    # address its account does not have: an unverified sender, for an agent to check.
    attempt_id: int | None = None
    # The other accounts the message is on (``copies``), with their flags: listed once.
    also: tuple[tuple[str, str | None], ...] = ()

    @property
    def unverified_sender(self) -> bool:
        return self.account_id is None and self.attempt_id is not None


_EARLIER = inbox_messages.alias("earlier")
# The open replies the inbox lists: each message once, as its first open copy (``copies``).
LISTED: tuple[ColumnElement[bool], ...] = (
    inbox_messages.c.direction == "inbound",
    inbox_messages.c.status == InboxStatus.OPEN,
    ~exists().where(
        inbox_messages.c.account_id.is_not(None),
        _EARLIER.c.provider_event_id == inbox_messages.c.provider_event_id,
        _EARLIER.c.direction == "inbound",
        _EARLIER.c.account_id.is_not(None),
        _EARLIER.c.status == InboxStatus.OPEN,
        _EARLIER.c.id < inbox_messages.c.id,
    ),
)


def open_replies(
    connection: Connection,
    *,
    limit: int = 50,
    before_id: int | None = None,
    intent: str | None = None,
    unknown_sender: bool | None = None,
) -> list[InboxItem]:
    """Open replies, newest first; page with ``before_id`` (the last id of a page).

    A message stored on several accounts (``copies``) is listed once, as its first copy,
    with the other accounts in ``also``: it is one message, answered and handled once."""
    query = (
        select(inbox_messages, accounts.c.reference, accounts.c.flag)
        .select_from(
            inbox_messages.outerjoin(accounts, accounts.c.id == inbox_messages.c.account_id)
        )
        .where(*LISTED)
        .order_by(inbox_messages.c.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(inbox_messages.c.id < before_id)
    if intent is not None:
        query = query.where(inbox_messages.c.intent == intent)
    if unknown_sender is not None:
        account = inbox_messages.c.account_id
        query = query.where(account.is_(None) if unknown_sender else account.is_not(None))
    rows = list(connection.execute(query))
    elsewhere = _copies_open(connection, [row for row in rows if row.account_id is not None])
    return [_item(row, elsewhere.get(row.id, ())) for row in rows]


def _copies_open(connection: Connection, rows: list[Any]) -> dict[int, tuple[Any, ...]]:
    """For each of ``rows`` (messages under an account), the other accounts its open copies
    are on, as (reference, flag), in the order of the copies."""
    events = sorted({row.provider_event_id for row in rows if row.provider_event_id})
    if not events:
        return {}
    found: dict[str, list[Any]] = {}
    for copy in connection.execute(
        select(inbox_messages.c.provider_event_id, inbox_messages.c.id, accounts.c.reference,
               accounts.c.flag)
        .join(accounts, accounts.c.id == inbox_messages.c.account_id)
        .where(
            inbox_messages.c.provider_event_id.in_(events),
            inbox_messages.c.direction == "inbound",
            inbox_messages.c.status == InboxStatus.OPEN,
        )
        .order_by(inbox_messages.c.id)
    ):  # fmt: skip
        found.setdefault(copy.provider_event_id, []).append(copy)
    return {
        row.id: tuple((c.reference, c.flag) for c in found.get(row.provider_event_id, ())
                      if c.id != row.id)
        for row in rows
    }  # fmt: skip


def thread(connection: Connection, account_id: int) -> list[Any]:
    """Everything in an account's inbox, both directions, oldest first; an agent's answer
    with its attempt's status (``delivery``: queued, sent, delivered...).

    Only an answer's own row is its attempt's: a reply, and the automatic text that
    answered a keyword (HELP, STOP), name the message they replied to by the same column."""
    answered = (
        (attempts.c.id == inbox_messages.c.attempt_id)
        & (inbox_messages.c.direction == "outbound")
        & inbox_messages.c.provider_event_id.is_(None)
    )
    return list(
        connection.execute(
            select(inbox_messages, attempts.c.status.label("delivery"))
            .select_from(inbox_messages.outerjoin(attempts, answered))
            .where(inbox_messages.c.account_id == account_id)
            .order_by(inbox_messages.c.received_at, inbox_messages.c.id)
        )
    )


def handle(
    connection: Connection, message_id: int, now: datetime, user_id: int | None = None
) -> None:
    """Mark an open reply handled, and its copies on the other accounts with the sender's
    address (``copies``) still open: one message, handled once. Each of these accounts'
    reply pause ends with its last open reply."""
    found = copies(connection, message_id, inbox_messages.c.id)
    if not found:
        raise NotFoundError(f"no inbox message {message_id}")
    handled = connection.execute(
        update(inbox_messages)
        .where(
            inbox_messages.c.id.in_([row.id for row in found]),
            inbox_messages.c.status == InboxStatus.OPEN,
        )
        .values(status=InboxStatus.HANDLED, handled_by=user_id, handled_at=now)
        .returning(inbox_messages.c.account_id)
    ).scalars()
    owners = sorted({account_id for account_id in handled if account_id is not None})
    if not owners:
        return
    # The accounts locked before their open replies are counted: a reply arriving meanwhile
    # waits, and then pauses its account again (``replies``), or is counted here.
    lock_accounts(connection, owners)
    still_open = set(
        connection.execute(
            select(inbox_messages.c.account_id)
            .where(
                inbox_messages.c.account_id.in_(owners),
                inbox_messages.c.direction == "inbound",
                inbox_messages.c.status == InboxStatus.OPEN,
            )
            .distinct()
        ).scalars()
    )
    done = [account_id for account_id in owners if account_id not in still_open]
    if not done:
        return
    connection.execute(
        update(accounts)
        .where(accounts.c.id.in_(done), accounts.c.pause_reason == REPLY_PAUSE_REASON)
        .values(paused_until=None, pause_reason=None, next_contact_at=now, updated_at=now)
    )


def copies(connection: Connection, message_id: int, *columns: ColumnElement[Any]) -> list[Any]:
    """The inbox row ``message_id`` and, for a debtor's message under an account, its copies
    under the other accounts with the sender's address (``replies`` stores one message once
    per account, each copy naming the same provider event; a copy kept under no account,
    from an unverified sender, is not one of them): ``columns`` of each, in the order of
    their ids, locked until the transaction ends. Empty if there is no row ``message_id``.

    Whoever answers or handles one copy locks them all, in this one order, before deciding
    (FOR UPDATE on PostgreSQL; on SQLite the database's one writer's lock, taken here): two
    agents on two copies of a message are checked one after the other, and never wait for
    each other in a circle. Their accounts, if they lock them, come after."""
    hold_writes(connection)
    message = connection.execute(
        select(
            inbox_messages.c.account_id,
            inbox_messages.c.provider_event_id,
            inbox_messages.c.direction,
        ).where(inbox_messages.c.id == message_id)
    ).first()  # what the copies are found by never changes: read without a lock
    if message is None:
        return []
    same: ColumnElement[bool] = inbox_messages.c.id == message_id
    if (
        message.account_id is not None
        and message.provider_event_id is not None
        and message.direction == "inbound"
    ):
        same = or_(
            same,
            and_(
                inbox_messages.c.provider_event_id == message.provider_event_id,
                inbox_messages.c.direction == "inbound",
                inbox_messages.c.account_id.is_not(None),
            ),
        )
    return list(
        connection.execute(
            select(*columns).where(same).order_by(inbox_messages.c.id).with_for_update()
        )
    )


def copies_elsewhere(connection: Connection, account_id: int) -> list[Any]:
    """The copies on other accounts of the account's messages (``copies``): for each,
    ``message_id`` (the account's), ``copy_id``, ``account_id``, ``reference`` and
    ``status`` (the copy's), by the account's message and then the copy."""
    mine = inbox_messages.alias("mine")
    other = inbox_messages.alias("other")
    return list(
        connection.execute(
            select(
                mine.c.id.label("message_id"),
                other.c.id.label("copy_id"),
                other.c.account_id,
                accounts.c.reference,
                other.c.status,
            )
            .select_from(
                mine.join(other, other.c.provider_event_id == mine.c.provider_event_id).join(
                    accounts, accounts.c.id == other.c.account_id
                )
            )
            .where(
                mine.c.account_id == account_id,
                mine.c.direction == "inbound",
                other.c.direction == "inbound",
                other.c.account_id != account_id,
            )
            .order_by(mine.c.id, other.c.id)
        )
    )


HANDOFF = "handoff"  # the flag of a cadence's hand-off (``planner``)


def flagged_accounts(connection: Connection, limit: int = 50) -> list[Any]:
    """Accounts an agent must look at (``reference``, ``name``, ``flag``, ``flagged_at``),
    most recently flagged first: what a reply said (an attorney, a cease, a dispute, a wrong
    number) or a cadence done and handed to the agents (``handoff``)."""
    return list(
        connection.execute(
            select(accounts.c.reference, accounts.c.name, accounts.c.flag, accounts.c.flagged_at)
            .where(accounts.c.flag.is_not(None))
            .order_by(accounts.c.flagged_at.desc(), accounts.c.id.desc())
            .limit(limit)
        )
    )


def clear_flag(connection: Connection, account_id: int, now: datetime) -> None:
    """The agent has seen what the flag was about (the compliance event stays). Whatever the
    flag is now: an agent's page clears only the flag it showed
    (``agent_actions.clear_flag``)."""
    connection.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        # A hand-off a reply's flag stood over is flagged now; one cleared has been seen.
        .values(
            flag=case(
                (and_(accounts.c.flag != HANDOFF, accounts.c.handoff == "pending"), HANDOFF),
                else_=None,
            ),
            handoff=case((accounts.c.flag == HANDOFF, "seen"), else_=accounts.c.handoff),
            updated_at=now,
        )
    )


def _item(row: Any, also: tuple[tuple[str, str | None], ...] = ()) -> InboxItem:
    return InboxItem(
        id=row.id,
        account_id=row.account_id,
        reference=row.reference,
        flag=row.flag,
        channel=row.channel,
        from_address=row.from_address,
        subject=row.subject,
        body=row.body,
        intent=row.intent,
        received_at=row.received_at,
        attempt_id=row.attempt_id,
        also=also,
    )
