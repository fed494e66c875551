"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 09:45:06.863488
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import outreach.db_types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("jurisdiction", sa.String(length=10), nullable=True),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("cadence", sa.String(length=64), nullable=False),
        sa.Column("collector_type", sa.String(length=16), nullable=False),
        sa.Column("next_contact_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paused_until", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pause_reason", sa.String(length=200), nullable=True),
        sa.Column("acquired_by", sa.String(length=64), nullable=True),
        sa.Column("acquired_until", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account")),
        sa.UniqueConstraint("reference", name=op.f("uq_account_reference")),
    )
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.create_index("ix_account_due", ["status", "next_contact_at"], unique=False)

    op.create_table(
        "import_run",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("rows_read", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("updated", sa.Integer(), nullable=False),
        sa.Column("unchanged", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_run")),
    )
    op.create_table(
        "template_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("tone", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("author", sa.String(length=100), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_version")),
        sa.UniqueConstraint(
            "channel",
            "name",
            "tone",
            "locale",
            "version",
            name=op.f("uq_template_version_channel_name_tone_locale_version"),
        ),
    )
    with op.batch_alter_table("template_version", schema=None) as batch_op:
        batch_op.create_index(
            "ix_template_version_lookup",
            ["channel", "name", "tone", "locale", "status"],
            unique=False,
        )

    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_login_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user")),
        sa.UniqueConstraint("username", name=op.f("uq_user_username")),
    )
    op.create_table(
        "compliance_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=True),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("occurred_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_compliance_event_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compliance_event")),
    )
    with op.batch_alter_table("compliance_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_compliance_event_account", ["account_id", "occurred_at"], unique=False
        )

    op.create_table(
        "contact_point",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("consent", sa.Boolean(), nullable=False),
        sa.Column("consent_source", sa.String(length=200), nullable=True),
        sa.Column("consent_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_contact_point_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_point")),
        sa.UniqueConstraint(
            "account_id",
            "channel",
            "address",
            name=op.f("uq_contact_point_account_id_channel_address"),
        ),
    )
    with op.batch_alter_table("contact_point", schema=None) as batch_op:
        batch_op.create_index("ix_contact_point_address", ["channel", "address"], unique=False)

    op.create_table(
        "payment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_payment_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_payment_dedupe_key")),
    )
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_account_id"), ["account_id"], unique=False)

    op.create_table(
        "promise_to_pay",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_promise_to_pay_account_id_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promise_to_pay")),
    )
    with op.batch_alter_table("promise_to_pay", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_promise_to_pay_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index("ix_promise_to_pay_due", ["status", "due_on"], unique=False)

    op.create_table(
        "attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("contact_point_id", sa.Integer(), nullable=True),
        sa.Column("template_version_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("template_name", sa.String(length=100), nullable=False),
        sa.Column("tone", sa.String(length=16), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_message_id", sa.String(length=100), nullable=True),
        sa.Column("error_code", sa.String(length=32), nullable=True),
        sa.Column("error_message", sa.String(length=500), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("next_try_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("acquired_by", sa.String(length=64), nullable=True),
        sa.Column("acquired_until", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_attempt_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["contact_point_id"],
            ["contact_point.id"],
            name=op.f("fk_attempt_contact_point_id_contact_point"),
        ),
        sa.ForeignKeyConstraint(
            ["template_version_id"],
            ["template_version.id"],
            name=op.f("fk_attempt_template_version_id_template_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attempt")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_attempt_idempotency_key")),
    )
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attempt_account_created", ["account_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_attempt_dispatch", ["status", "next_try_at"], unique=False)
        batch_op.create_index("ix_attempt_provider_message", ["provider_message_id"], unique=False)

    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("step_key", sa.String(length=64), nullable=True),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("verdict", sa.String(length=8), nullable=False),
        sa.Column("not_before", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "rules_evaluated",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "input_snapshot",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("ruleset_version", sa.String(length=64), nullable=False),
        sa.Column("decided_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_decision_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempt.id"], name=op.f("fk_decision_attempt_id_attempt")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decision")),
    )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index(
            "ix_decision_account_decided", ["account_id", "decided_at"], unique=False
        )

    op.create_table(
        "provider_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("event_type", sa.String(length=24), nullable=False),
        sa.Column("raw_status", sa.String(length=64), nullable=True),
        sa.Column("provider_message_id", sa.String(length=100), nullable=True),
        sa.Column("attempt_id", sa.Integer(), nullable=True),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("dedupe_key", sa.String(length=128), nullable=False),
        sa.Column("occurred_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("received_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_provider_event_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["attempt_id"], ["attempt.id"], name=op.f("fk_provider_event_attempt_id_attempt")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_event")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_provider_event_dedupe_key")),
    )
    with op.batch_alter_table("provider_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_event_attempt_id"), ["attempt_id"], unique=False
        )
        batch_op.create_index(
            "ix_provider_event_message", ["provider", "provider_message_id"], unique=False
        )

    op.create_table(
        "inbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=True),
        sa.Column("provider_event_id", sa.Integer(), nullable=True),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("from_address", sa.String(length=320), nullable=False),
        sa.Column("to_address", sa.String(length=320), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("intent", sa.String(length=24), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("received_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handled_by", sa.Integer(), nullable=True),
        sa.Column("handled_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["account.id"], name=op.f("fk_inbox_message_account_id_account")
        ),
        sa.ForeignKeyConstraint(
            ["handled_by"], ["user.id"], name=op.f("fk_inbox_message_handled_by_user")
        ),
        sa.ForeignKeyConstraint(
            ["provider_event_id"],
            ["provider_event.id"],
            name=op.f("fk_inbox_message_provider_event_id_provider_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_message")),
    )
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_message_account", ["account_id", "received_at"], unique=False
        )
        batch_op.create_index("ix_inbox_message_status", ["status", "received_at"], unique=False)

    op.create_table(
        "suppression",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("provider_event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", outreach.db_types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", outreach.db_types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("lifted_reason", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["provider_event_id"],
            ["provider_event.id"],
            name=op.f("fk_suppression_provider_event_id_provider_event"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression")),
    )
    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.create_index("ix_suppression_address", ["address", "channel"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("suppression", schema=None) as batch_op:
        batch_op.drop_index("ix_suppression_address")

    op.drop_table("suppression")
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_message_status")
        batch_op.drop_index("ix_inbox_message_account")

    op.drop_table("inbox_message")
    with op.batch_alter_table("provider_event", schema=None) as batch_op:
        batch_op.drop_index("ix_provider_event_message")
        batch_op.drop_index(batch_op.f("ix_provider_event_attempt_id"))

    op.drop_table("provider_event")
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_account_decided")

    op.drop_table("decision")
    with op.batch_alter_table("attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_attempt_provider_message")
        batch_op.drop_index("ix_attempt_dispatch")
        batch_op.drop_index("ix_attempt_account_created")

    op.drop_table("attempt")
    with op.batch_alter_table("promise_to_pay", schema=None) as batch_op:
        batch_op.drop_index("ix_promise_to_pay_due")
        batch_op.drop_index(batch_op.f("ix_promise_to_pay_account_id"))

    op.drop_table("promise_to_pay")
    with op.batch_alter_table("payment", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_account_id"))

    op.drop_table("payment")
    with op.batch_alter_table("contact_point", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_point_address")

    op.drop_table("contact_point")
    with op.batch_alter_table("compliance_event", schema=None) as batch_op:
        batch_op.drop_index("ix_compliance_event_account")

    op.drop_table("compliance_event")
    op.drop_table("user")
    with op.batch_alter_table("template_version", schema=None) as batch_op:
        batch_op.drop_index("ix_template_version_lookup")

    op.drop_table("template_version")
    op.drop_table("import_run")
    with op.batch_alter_table("account", schema=None) as batch_op:
        batch_op.drop_index("ix_account_due")

    op.drop_table("account")
