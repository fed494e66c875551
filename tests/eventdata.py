"""Accounts, attempts and provider events for the events and webhook tests."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, insert, select

from outreach.compliance_store import attempts
from outreach.providers.base import EventType, ProviderEvent, dedupe_key
from outreach.store import accounts, contact_points
from tests.conftest import NOW

PHONE = "+16175550101"
OTHER_PHONE = "+16175550102"
EMAIL = "Pat.Doe@example.com"


def add_account(
    engine: Engine,
    reference: str = "R-1",
    *,
    phone: str | None = PHONE,
    email: str | None = EMAIL,
    now: datetime = NOW,
) -> int:
    """An active Massachusetts account with consent on its phone (sms and voice) and email."""
    with engine.begin() as connection:
        account_id = connection.execute(
            insert(accounts)
            .values(
                reference=reference, name="Pat Doe", balance_minor=12_050,
                imported_balance_minor=12_050, currency="USD", due_date=date(2026, 10, 1),
                status="active", timezone="America/New_York", jurisdiction="US-MA",
                locale="en_US", cadence="standard", collector_type="first_party",
                next_contact_at=now, created_at=now - timedelta(days=30), updated_at=now,
            )
            .returning(accounts.c.id)
        ).scalar_one()  # fmt: skip
        points = [("sms", phone), ("voice", phone), ("email", email)]
        for channel, address in points:
            if address is None:
                continue
            connection.execute(
                insert(contact_points).values(
                    account_id=account_id, channel=channel, address=address,
                    kind="personal" if channel == "email" else "mobile", priority=0,
                    consent=True, consent_source="test", consent_at=now - timedelta(days=30),
                    status="active", created_at=now, updated_at=now,
                )
            )  # fmt: skip
    return int(account_id)


def add_attempt(
    engine: Engine,
    account_id: int,
    *,
    channel: str = "sms",
    to: str = PHONE,
    status: str = "sent",
    message_id: str | None = "SM0001",
    now: datetime = NOW,
    **values: Any,
) -> int:
    row = {
        "account_id": account_id,
        "idempotency_key": f"{account_id}:{channel}:{to}:{message_id}:{status}:{values}",
        "step_key": "day-0",
        "channel": channel,
        "to_address": to,
        "template_name": "reminder",
        "tone": "friendly",
        "locale": "en_US",
        "subject": "Your balance" if channel == "email" else None,
        "body": "Your balance of $120.50 is due. Reply STOP to opt out.",
        "voicemail": "Please call Northwind Customer Care." if channel == "voice" else None,
        "status": status,
        "provider_message_id": message_id,
        "tries": 1,
        "automated": True,
        "created_at": now - timedelta(minutes=5),
        "updated_at": now - timedelta(minutes=5),
        "sent_at": now - timedelta(minutes=5) if status != "queued" else None,
    }
    with engine.begin() as connection:
        inserted = connection.execute(
            insert(attempts).values(**(row | values)).returning(attempts.c.id)
        )
        return int(inserted.scalar_one())


def event(
    event_type: EventType,
    *,
    provider: str = "twilio_sms",
    kind: str = "message_status",
    key: str | None = None,
    at: datetime = NOW,
    **values: Any,
) -> ProviderEvent:
    """A normalized event; its dedupe key from ``key``, else from its type and values."""
    ident = key or f"{event_type}:{sorted(values.items())}"
    return ProviderEvent(
        provider=provider,
        kind=kind,
        event_type=event_type,
        dedupe_key=dedupe_key(provider, ident),
        occurred_at=at,
        payload={"test": ident},
        **values,
    )


def inbound(body: str, *, sender: str = PHONE, **values: Any) -> ProviderEvent:
    """An inbound SMS as Twilio's parser gives it (a keyword by the provider's reading)."""
    from outreach.providers.keywords import provider_intent

    kind = provider_intent(body)
    return event(
        kind, kind="inbound", key=values.pop("key", f"in:{sender}:{body}"), body=body,
        from_address=sender, to_address="+16175550100",
        suppression="stop" if kind is EventType.OPTED_OUT else None, **values,
    )  # fmt: skip


def rows(engine: Engine, table: Any, **where: Any) -> list[Any]:
    query = select(table).order_by(table.c.id)
    for column, value in where.items():
        query = query.where(table.c[column] == value)
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


def attempt(engine: Engine, attempt_id: int) -> Any:
    return rows(engine, attempts, id=attempt_id)[0]


def account(engine: Engine, account_id: int) -> Any:
    return rows(engine, accounts, id=account_id)[0]
