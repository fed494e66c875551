"""Core table handles and the queries several stages share.

Bulk paths (imports, the planner) use SQLAlchemy Core on these tables: one statement per
batch instead of one ORM object per row.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table
from sqlmodel import SQLModel

from outreach.models import (
    Account,
    ComplianceEvent,
    ContactPoint,
    ImportRun,
    Payment,
    PromiseToPay,
    Suppression,
)


def table_of(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


accounts = table_of(Account)
contact_points = table_of(ContactPoint)
compliance_events = table_of(ComplianceEvent)
import_runs = table_of(ImportRun)
payments = table_of(Payment)
promises_to_pay = table_of(PromiseToPay)
suppressions = table_of(Suppression)
