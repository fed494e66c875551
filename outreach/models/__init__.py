"""The tables. Importing this package registers all of them on ``SQLModel.metadata``."""

from outreach.models.accounts import (
    Account,
    AccountStatus,
    CollectorType,
    ComplianceEvent,
    ComplianceEventKind,
    ContactKind,
    ContactPoint,
    ContactStatus,
    ImportRun,
    Payment,
    PromiseStatus,
    PromiseToPay,
)
from outreach.models.base import Channel
from outreach.models.content import Role, TemplateStatus, TemplateVersion, User
from outreach.models.messaging import (
    Attempt,
    AttemptStatus,
    Decision,
    InboxMessage,
    InboxStatus,
    ProviderEvent,
    Suppression,
    SuppressionReason,
    Verdict,
)

__all__ = [
    "Account",
    "AccountStatus",
    "Attempt",
    "AttemptStatus",
    "Channel",
    "CollectorType",
    "ComplianceEvent",
    "ComplianceEventKind",
    "ContactKind",
    "ContactPoint",
    "ContactStatus",
    "Decision",
    "ImportRun",
    "InboxMessage",
    "InboxStatus",
    "Payment",
    "PromiseStatus",
    "PromiseToPay",
    "ProviderEvent",
    "Role",
    "Suppression",
    "SuppressionReason",
    "TemplateStatus",
    "TemplateVersion",
    "User",
    "Verdict",
]
