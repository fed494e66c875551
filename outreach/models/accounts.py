"""Debtor accounts, how to reach them, and what they paid or promised."""

from __future__ import annotations

from datetime import date, datetime, time
from enum import StrEnum

from sqlalchemy import Index, Time, UniqueConstraint, column, func, literal_column, text
from sqlmodel import Field, SQLModel

from outreach.models.base import money, reference_to, short, when


class AccountStatus(StrEnum):
    ACTIVE = "active"  # outreach may contact it when due
    PAID = "paid"  # balance settled: closed for outreach
    CLOSED = "closed"  # closed by the business (written off, sold, recalled)


class CollectorType(StrEnum):
    FIRST_PARTY = "first_party"  # the creditor collecting its own debt
    THIRD_PARTY = "third_party"  # an agency collecting for others (FDCPA applies)


class Account(SQLModel, table=True):
    """One debt owed by one debtor, identified by the business's own reference."""

    __table_args__ = (
        # The import's upsert key.
        UniqueConstraint("reference"),
        # Agents' search for a reference's beginning: a range in byte order, which the
        # unique index answers only under PostgreSQL's C collation (SQLite compares bytes).
        # PostgreSQL only (migration 0012). The collation is among its options because
        # PostgreSQL's reflection reads the index back as the bare column, so models and
        # migrations compare equal; SQLite's comparison skips it as an expression.
        Index(
            "ix_account_reference_c",
            literal_column("reference"),
            postgresql_ops={"reference": 'COLLATE "C"'},
        ).ddl_if(dialect="postgresql"),
        # The planner's query: active accounts whose next contact has come.
        Index("ix_account_due", "status", "next_contact_at"),
        # Few accounts are paused or flagged at a time: housekeeping's ending pauses and
        # the start page's counts read these, not the whole table.
        Index(
            "ix_account_paused",
            "paused_until",
            sqlite_where=text("paused_until IS NOT NULL"),
            postgresql_where=text("paused_until IS NOT NULL"),
        ),
        Index(
            "ix_account_flagged",
            "flag",
            sqlite_where=text("flag IS NOT NULL"),
            postgresql_where=text("flag IS NOT NULL"),
        ),
        Index(
            "ix_account_servicer_account_no",
            "servicer_account_no",
            sqlite_where=text("servicer_account_no IS NOT NULL"),
            postgresql_where=text("servicer_account_no IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str = short(64)
    name: str = short(200)
    balance_minor: int = money()  # what is owed now: the last import less later payments
    imported_balance_minor: int = money()  # the figure last imported, to tell a change
    currency: str = short(3)
    due_date: date
    status: str = short(16, default=AccountStatus.ACTIVE)
    timezone: str | None = short(64, nullable=True, default=None)
    jurisdiction: str | None = short(10, nullable=True, default=None)
    locale: str = short(16)
    cadence: str = short(64)
    collector_type: str = short(16, default=CollectorType.FIRST_PARTY)
    # A student loan's servicer account number when the debt was obtained: the student
    # loans serviced under one number are one particular debt (Reg F 1006.14(b)(4)).
    servicer_account_no: str | None = short(64, nullable=True, default=None)
    # The day from which the operator says the debt is time-barred (its limitation period
    # for suit has run: state law, which outreach does not work out). None: not time-barred.
    time_barred_on: date | None = Field(default=None, nullable=True)
    # When a debt collector took the debt over from the creditor (an import turned the
    # account from first_party to third_party): the creditor's messages before then are no
    # communications of the collector's. None: every message is the current collector's.
    collector_since: datetime | None = when(nullable=True)
    next_contact_at: datetime | None = when(nullable=True)
    paused_until: datetime | None = when(nullable=True)
    pause_reason: str | None = short(200, nullable=True, default=None)
    # Why an agent must look at the account (a reply said dispute, cease, attorney, wrong
    # number); set by the events stage, cleared by the agent.
    flag: str | None = short(24, nullable=True, default=None)
    flagged_at: datetime | None = when(nullable=True)
    # The cadence's hand-off to the agents: ``pending`` once it has come (flagged
    # ``handoff``, or behind a reply's flag until that is cleared), ``seen`` once an agent
    # has cleared the hand-off's flag.
    handoff: str | None = short(8, nullable=True, default=None)
    # Lease held by the daemon that is planning this account (see store.py).
    acquired_by: str | None = short(64, nullable=True, default=None)
    acquired_until: datetime | None = when(nullable=True)
    created_at: datetime = when()
    updated_at: datetime = when()
    closed_at: datetime | None = when(nullable=True)


class ContactKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    WORK = "work"
    PERSONAL = "personal"
    UNKNOWN = "unknown"


class ContactStatus(StrEnum):
    ACTIVE = "active"
    INVALID = "invalid"  # the provider says it cannot receive (bounce, not in service)
    WRONG_NUMBER = "wrong_number"  # someone else answers there
    SUPERSEDED = "superseded"  # replaced by a newer import; kept for the history


class ContactPoint(SQLModel, table=True):
    """An address on one channel: a phone gives an sms and a voice point, each with its consent."""

    __tablename__ = "contact_point"
    __table_args__ = (
        UniqueConstraint("account_id", "channel", "address"),
        # Inbound messages are matched to accounts by address; email addresses without
        # case, so by their lower-cased spelling too.
        Index("ix_contact_point_address", "channel", "address"),
        Index("ix_contact_point_address_lower", "channel", func.lower(column("address"))),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account", index=False)
    channel: str = short(8)
    address: str = short(320)
    kind: str = short(16, default=ContactKind.UNKNOWN)
    priority: int = 0  # 0 is the primary address on its channel
    timezone: str | None = short(64, nullable=True, default=None)
    consent: bool = False  # consent to automated calls and texts (or to email)
    consent_source: str | None = short(200, nullable=True, default=None)
    consent_at: datetime | None = when(nullable=True)
    status: str = short(16, default=ContactStatus.ACTIVE)
    created_at: datetime = when()
    updated_at: datetime = when()


class Payment(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("dedupe_key"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account")
    amount_minor: int = money()
    currency: str = short(3)
    paid_on: date
    # The payment's id in the source system, or a digest of the row (see payments.py).
    dedupe_key: str = short(128)
    external_id: str | None = short(128, nullable=True, default=None)
    source: str = short(200)
    created_at: datetime = when()


class PromiseStatus(StrEnum):
    PENDING = "pending"
    KEPT = "kept"
    BROKEN = "broken"
    CANCELLED = "cancelled"


class PromiseToPay(SQLModel, table=True):
    __tablename__ = "promise_to_pay"
    __table_args__ = (
        Index("ix_promise_to_pay_due", "status", "due_on"),
        # The agent's form recorded it: the same form sent twice records one promise.
        Index("ux_promise_to_pay_form_key", "account_id", "form_key", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account")
    amount_minor: int = money()
    currency: str = short(3)
    due_on: date
    status: str = short(16, default=PromiseStatus.PENDING)
    created_by: str = short(100)
    created_at: datetime = when()
    resolved_at: datetime | None = when(nullable=True)
    # The random key of the agent's form that recorded it (none: recorded otherwise).
    form_key: str | None = short(64, nullable=True, default=None)


class ComplianceEventKind(StrEnum):
    """Facts about the debtor that change what contact is allowed (see docs/compliance.md)."""

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    PROHIBITED_MEDIUM = "prohibited_medium"
    CONSENT = "consent"
    CONSENT_REVOKED = "consent_revoked"
    CEASE = "cease"
    CEASE_WITHDRAWN = "cease_withdrawn"
    DISPUTE = "dispute"
    DISPUTE_RESOLVED = "dispute_resolved"
    ATTORNEY = "attorney"
    ATTORNEY_WITHDRAWN = "attorney_withdrawn"
    BANKRUPTCY = "bankruptcy"
    BANKRUPTCY_CLOSED = "bankruptcy_closed"
    CONVERSATION = "conversation"
    WORKPLACE_PROHIBITED = "workplace_prohibited"
    WORKPLACE_ALLOWED = "workplace_allowed"
    WORKPLACE_INCONVENIENT = "workplace_inconvenient"
    WORKPLACE_CONVENIENT = "workplace_convenient"


class ComplianceEvent(SQLModel, table=True):
    """A dated fact about a debtor, kept so every later decision can cite it."""

    __tablename__ = "compliance_event"
    __table_args__ = (
        Index("ix_compliance_event_account", "account_id", "occurred_at"),
        # A revoked consent naming a number is found by the number, for every account using
        # it (``compliance_store._revoked_for_numbers``).
        Index("ix_compliance_event_address", "address"),
        # The agent's form recorded it: the same form sent twice records one event. Partial:
        # the events recorded otherwise (most of them) have no key.
        Index(
            "ux_compliance_event_form_key",
            "account_id",
            "form_key",
            unique=True,
            sqlite_where=text("form_key IS NOT NULL"),
            postgresql_where=text("form_key IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account", index=False)
    kind: str = short(24)
    channel: str | None = short(8, nullable=True, default=None)
    address: str | None = short(320, nullable=True, default=None)
    occurred_at: datetime = when()
    source: str = short(200)
    note: str | None = short(500, nullable=True, default=None)
    # The random key of the agent's form that recorded it (none: recorded otherwise).
    form_key: str | None = short(64, nullable=True, default=None)


class ImportRun(SQLModel, table=True):
    """One run of an import: what came in and what it changed."""

    __tablename__ = "import_run"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = short(16)
    source: str = short(500)
    dry_run: bool = False
    started_at: datetime = when()
    finished_at: datetime | None = when(nullable=True)
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


class DesignatedTime(SQLModel, table=True):
    """A time the debtor said is inconvenient (Reg F 1006.6(b)(1)): never contact then."""

    __tablename__ = "designated_time"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = reference_to("account")
    days: str = short(27)  # comma-separated weekdays: mon,tue,...
    start_local: time = Field(sa_type=Time())
    end_local: time = Field(sa_type=Time())  # at or before start: runs past midnight
    source: str = short(200)
    created_at: datetime = when()
    withdrawn_at: datetime | None = when(nullable=True)
