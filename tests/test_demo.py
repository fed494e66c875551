from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, func, select

from outreach import store
from outreach.clock import FixedClock
from outreach.demo import demo_accounts, load_demo
from outreach.importing.account_rows import ImportDefaults
from tests.conftest import REPO


def test_demo_data_is_realistic_and_repeatable(
    engine: Engine, defaults: ImportDefaults, clock: FixedClock
) -> None:
    loaded = load_demo(engine, defaults, clock, count=300)
    assert (loaded.summary.created, loaded.summary.rejected) == (300, 0)
    assert loaded.opt_outs_added > 0
    with engine.connect() as connection:
        accounts = connection.execute(select(store.accounts)).all()
        no_consent = connection.execute(
            select(func.count())
            .select_from(store.contact_points)
            .where(
                store.contact_points.c.channel == "sms", store.contact_points.c.consent.is_(False)
            )
        ).scalar_one()
        suppressed = connection.execute(
            select(func.count()).select_from(store.suppressions)
        ).scalar()
    zones = Counter(a.timezone for a in accounts)
    states = Counter(a.jurisdiction for a in accounts)
    assert len([z for z in zones if z]) >= 6
    assert len(states) >= 15
    assert None in zones  # some left unknown: compliance must consider every candidate zone
    overdue_days = [(clock.now().date() - a.due_date).days for a in accounts]
    assert min(overdue_days) >= -30
    assert max(overdue_days) <= 120
    assert min(overdue_days) < 0 < max(overdue_days)
    assert no_consent > 0
    assert suppressed == loaded.opt_outs_added
    assert any(a.status == "paid" for a in accounts)
    assert {a.locale for a in accounts} == {"en_US", "es_US"}

    clock.advance(timedelta(hours=1))
    again = load_demo(engine, defaults, clock, count=300)
    assert (again.summary.created, again.summary.unchanged, again.opt_outs_added) == (0, 300, 0)


def test_demo_contacts_are_fictional() -> None:
    for account in demo_accounts(500, date(2026, 11, 2), seed=11):
        phone = account.values["phone"]
        assert not phone or phone[5:10] == "55501"
        email = account.values["email"]
        assert not email or email.rsplit("@", 1)[1] in {"example.com", "example.net", "example.org"}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_demo_on_another_port_makes_links_to_that_port() -> None:
    # -n: the commands, not run. Every command the demo runs makes links (init --demo's
    # and run's messages), so each is given the port.
    planned = subprocess.run(
        ["make", "-n", "demo", "DEMO_PORT=8100", "VENV=/nonexistent"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    commands = [line for line in planned.splitlines() if "/bin/outreach " in line]
    run = [line for line in commands if "/bin/outreach run " in line]
    assert run and "--port 8100" in run[0]
    assert all("PUBLIC_BASE_URL=http://127.0.0.1:8100 " in line for line in commands)
