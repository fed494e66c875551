"""Messages held for review (``unknown``), settled by hand: on SQLite and PostgreSQL, with
the real planner and dispatcher, and through the ``outreach attempts`` commands."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, update

from outreach.agent_actions import ActionRefused, ChangedMeanwhile
from outreach.compliance_store import attempts, decisions
from outreach.errors import ChannelError, NotFoundError
from outreach.events import apply_events
from outreach.providers.base import EventType, ProviderEvent
from outreach.review import Hold, Settlement, count_held, held_for_review, settle
from tests.conftest import NOW
from tests.test_cli import outreach
from tests.test_dispatcher import (
    FailingProvider,
    dispatcher,
    fake_sms,
    outbox_lines,
    planned,
    set_attempt,
    the_attempt,
)
from tests.test_dispatcher import world as world
from tests.test_import_accounts import row
from tests.test_planner import World, codes, rows_of, suppress

pytestmark = pytest.mark.anyio

TIMEOUT = ChannelError("read timeout", provider="fake", ambiguous=True)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def held_message(world: World) -> int:
    """A1's text, sent into a read timeout: held for review. Its id."""
    planned(world, row("A-1"))
    lost = FailingProvider("sms", TIMEOUT)
    assert dict((await dispatcher(world, fake_sms(world, lost)).tick()).outcomes) == {"unknown": 1}
    world.clock.advance(timedelta(hours=1))
    return int(the_attempt(world).id)


def settled(world: World, attempt_id: int, how: Settlement, **options: Any) -> None:
    with world.engine.begin() as connection:
        settle(connection, attempt_id, how, world.clock.now(), "ops", **options)


async def test_held_messages_are_listed_with_their_account_and_why(world: World) -> None:
    attempt_id = await held_message(world)
    with world.engine.connect() as connection:
        [held] = held_for_review(connection)
        assert held_for_review(connection, reference="A-1") == [held]
        assert held_for_review(connection, reference="B-9") == []
        assert count_held(connection) == 1
    assert (held.id, held.reference, held.channel, held.to_address) == (
        attempt_id, "A-1", "sms", "+16175550101"
    )  # fmt: skip
    assert held.error_message == "read timeout" and held.held_since == NOW


async def test_settled_as_sent_keeps_the_providers_id_and_is_never_sent(world: World) -> None:
    attempt_id = await held_message(world)
    set_attempt(world, updated_at=NOW + timedelta(minutes=30))  # touched since it was held
    settled(world, attempt_id, Settlement.SENT, provider_message_id=" SM0123 ", note="in  logs")
    attempt = the_attempt(world)
    # Sent when it was marked sending.
    assert (attempt.status, attempt.provider_message_id, attempt.sent_at) == (
        "sent", "SM0123", NOW
    )  # fmt: skip
    assert (attempt.reviewed_by, attempt.reviewed_at, attempt.review_note) == (
        "ops", world.clock.now(), "in logs"
    )  # fmt: skip
    assert (await dispatcher(world).tick()).claimed == 0
    assert outbox_lines(world) == []


async def test_resent_it_leaves_once_more_under_its_own_key(world: World) -> None:
    attempt_id = await held_message(world)
    settled(world, attempt_id, Settlement.RESEND)
    attempt = the_attempt(world)
    assert (attempt.status, attempt.next_try_at, attempt.reviewed_by) == (
        "queued", world.clock.now(), "ops"
    )  # fmt: skip
    send = dispatcher(world)
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    assert (await send.tick()).claimed == 0
    [line] = outbox_lines(world)
    assert line["attempt_id"] == attempt_id
    [only] = rows_of(world.engine, attempts)
    assert (only.id, only.status) == (attempt_id, "sent")


async def test_resent_it_waits_out_an_outage_from_30_seconds(world: World) -> None:
    attempt_id = await held_message(world)
    set_attempt(world, outages=5)  # outages waited out before the send that was lost
    settled(world, attempt_id, Settlement.RESEND)
    assert the_attempt(world).outages == 0
    down = ChannelError("service unavailable", provider="fake", retryable=True, status_code=503)
    send = dispatcher(world, fake_sms(world, FailingProvider("sms", down)))
    assert dict((await send.tick()).outcomes) == {"retry": 1}
    assert the_attempt(world).next_try_at == world.clock.now() + timedelta(seconds=30)


async def test_resent_it_is_checked_again_as_it_leaves(world: World) -> None:
    attempt_id = await held_message(world)
    # The debtor texted STOP meanwhile: the resend does not go.
    suppress(world.engine, "sms", "+16175550101", "stop", world.clock.now())
    settled(world, attempt_id, Settlement.RESEND)
    assert dict((await dispatcher(world).tick()).outcomes) == {"blocked": 1}
    attempt = the_attempt(world)
    assert attempt.status == "cancelled" and outbox_lines(world) == []
    [decision] = [d for d in rows_of(world.engine, decisions) if d.stage == "dispatch"][-1:]
    assert "CARRIER_STOP_KEYWORD" in codes(decision)


async def test_cancelled_it_is_never_sent(world: World) -> None:
    attempt_id = await held_message(world)
    settled(world, attempt_id, Settlement.CANCEL, note="not in the provider's logs")
    assert (the_attempt(world).status, the_attempt(world).review_note) == (
        "cancelled", "not in the provider's logs"
    )  # fmt: skip
    assert (await dispatcher(world).tick()).claimed == 0


async def test_what_cannot_be_settled_is_refused_and_nothing_changes(world: World) -> None:
    attempt_id = await held_message(world)
    with pytest.raises(NotFoundError, match="no attempt 999999"):
        settled(world, 999999, Settlement.SENT)
    with pytest.raises(ActionRefused, match="sent only"):
        settled(world, attempt_id, Settlement.RESEND, provider_message_id="SM1")
    with pytest.raises(ActionRefused, match="longer than 500"):
        settled(world, attempt_id, Settlement.CANCEL, note="x" * 501)
    # A webhook told of it under the provider's id: it went, and cannot be resent.
    set_attempt(world, provider_message_id="SM77")
    with pytest.raises(ActionRefused, match="provider's id SM77: the provider took it"):
        settled(world, attempt_id, Settlement.RESEND)
    assert the_attempt(world).status == "unknown"
    # A webhook settled it meanwhile: the provider's word wins.
    set_attempt(world, status="delivered")
    with pytest.raises(ActionRefused, match="is delivered, not held for review"):
        settled(world, attempt_id, Settlement.CANCEL)
    attempt = the_attempt(world)
    assert (attempt.status, attempt.reviewed_by) == ("delivered", None)


async def test_the_commands_list_and_settle_held_messages(
    world: World, env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    empty = outreach("attempts", "held", env=env, cwd=tmp_path)
    assert (empty.returncode, empty.stdout.strip()) == (0, "No message is held for review.")
    unknown = outreach("attempts", "held", "--account", "NO-SUCH", env=env, cwd=tmp_path)
    assert (unknown.returncode, unknown.stdout) == (2, "")  # not "nothing held" for a typo
    assert "no account with reference 'NO-SUCH'" in unknown.stderr
    attempt_id = await held_message(world)
    listed = outreach("attempts", "held", "--account", "A-1", env=env, cwd=tmp_path)
    assert listed.returncode == 0
    assert "A-1" in listed.stdout and "+16175550101" in listed.stdout
    assert "read timeout" in listed.stdout and "1 held." in listed.stdout

    wrong = outreach("attempts", "settle", str(attempt_id), "--as", "maybe", env=env, cwd=tmp_path)
    assert wrong.returncode == 2 and "choose one of sent, resend, cancel" in wrong.stderr
    missing = outreach("attempts", "settle", "999999", "--as", "sent", env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no attempt 999999" in missing.stderr
    done = outreach("attempts", "settle", str(attempt_id), "--as", "resend", "--by", "alex",
                    "--note", "not in Twilio's logs", env=env, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Attempt {attempt_id} is queued again" in done.stdout
    attempt = the_attempt(world)
    assert (attempt.status, attempt.reviewed_by, attempt.review_note) == (
        "queued", "alex", "not in Twilio's logs"
    )  # fmt: skip
    again = outreach("attempts", "settle", str(attempt_id), "--as", "sent", env=env, cwd=tmp_path)
    assert again.returncode == 2 and "is queued, not held for review" in again.stderr
    none = outreach("attempts", "held", "--account", "A-1", env=env, cwd=tmp_path)
    assert (none.returncode, none.stdout.strip()) == (0, "No message of A-1 is held for review.")


async def test_a_webhook_that_names_it_while_it_is_settled_wins(
    world: World, engine: Engine
) -> None:
    """The provider's id arrives (a "queued" callback, which keeps it unknown) between the
    read and the write of a resend: it is not queued again, and nothing changes."""
    attempt_id = await held_message(world)
    fired: list[str] = []

    def webhook_meanwhile(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE ATTEMPT") and not fired:
            fired.append(statement)
            with engine.begin() as other:
                other.execute(update(attempts).values(provider_message_id="SM42"))

    event.listen(engine, "before_cursor_execute", webhook_meanwhile)
    try:
        with pytest.raises(ActionRefused, match="provider's id SM42: the provider took it"):
            settled(world, attempt_id, Settlement.RESEND)
    finally:
        event.remove(engine, "before_cursor_execute", webhook_meanwhile)
    assert fired
    attempt = the_attempt(world)
    assert (attempt.status, attempt.provider_message_id, attempt.reviewed_by) == (
        "unknown", "SM42", None
    )  # fmt: skip
    assert (await dispatcher(world).tick()).claimed == 0


async def test_a_providers_id_another_attempt_has_is_refused(world: World) -> None:
    attempt_id = await held_message(world)
    with world.engine.begin() as connection:
        connection.execute(update(attempts).values(idempotency_key="other", status="sent",
                                                   provider_message_id="SM9"))  # fmt: skip
    planned(world, row("B-1", phone="(617) 555-0109"))
    [held] = [a for a in rows_of(world.engine, attempts) if a.id != attempt_id]
    with world.engine.begin() as connection:
        connection.execute(update(attempts).where(attempts.c.id == held.id).values(
            status="unknown"))  # fmt: skip
    with pytest.raises(ActionRefused, match=f"SM9 is attempt {attempt_id}'s"):
        settled(world, held.id, Settlement.SENT, provider_message_id="SM9")


async def test_settling_as_sent_keeps_the_id_a_webhook_gave(world: World) -> None:
    attempt_id = await held_message(world)
    set_attempt(world, provider_message_id="SM42")  # a "queued" callback: still unknown
    with pytest.raises(ActionRefused, match="has the provider's id SM42 already"):
        settled(world, attempt_id, Settlement.SENT, provider_message_id="SM77")
    settled(world, attempt_id, Settlement.SENT)
    assert (the_attempt(world).status, the_attempt(world).provider_message_id) == ("sent", "SM42")


def shown_hold(world: World) -> Hold:
    """The hold as the review page shows it."""
    with world.engine.connect() as connection:
        [held] = held_for_review(connection)
    return Hold(held.tries)


async def test_a_settling_for_a_hold_does_not_settle_a_later_one(world: World) -> None:
    """Resent, the message was sent again and held again: a settling decided on the first
    hold (what a page showed then) is refused, and the second hold stays for review."""
    attempt_id = await held_message(world)
    first = shown_hold(world)
    settled(world, attempt_id, Settlement.RESEND, expected=first)
    lost = FailingProvider("sms", TIMEOUT)
    assert dict((await dispatcher(world, fake_sms(world, lost)).tick()).outcomes) == {"unknown": 1}
    second = shown_hold(world)
    assert second.tries == first.tries + 1
    with pytest.raises(ChangedMeanwhile, match="changed since the page was shown"):
        settled(world, attempt_id, Settlement.CANCEL, expected=first)
    assert (the_attempt(world).status, the_attempt(world).reviewed_by) == ("unknown", "ops")
    settled(world, attempt_id, Settlement.CANCEL, expected=second)
    assert the_attempt(world).status == "cancelled"


async def test_a_queued_callback_after_the_page_was_shown_does_not_make_it_stale(
    world: World,
) -> None:
    """A "queued" status callback brings the provider's id and keeps the message held: it
    was not sent again (the same tries), so the page's form still settles that hold, and
    the id the webhook gave is kept."""
    attempt_id = await held_message(world)
    shown = shown_hold(world)
    with world.engine.connect() as connection:
        [before] = held_for_review(connection)
    world.clock.advance(timedelta(minutes=5))
    now = world.clock.now()
    queued = ProviderEvent(
        provider="fake", kind="message_status", event_type=EventType.QUEUED,
        dedupe_key="q-1", occurred_at=now, payload={}, provider_message_id="SM42",
        attempt_id=attempt_id, raw_status="queued",
    )  # fmt: skip
    apply_events(world.engine, [queued], now)
    attempt = the_attempt(world)
    assert (attempt.status, attempt.provider_message_id, attempt.tries) == (
        "unknown", "SM42", shown.tries
    )  # fmt: skip
    with world.engine.connect() as connection:
        [after] = held_for_review(connection)
    assert after.held_since > before.held_since  # what changed is only when it was changed
    settled(world, attempt_id, Settlement.SENT, expected=shown)
    attempt = the_attempt(world)
    assert (attempt.status, attempt.provider_message_id) == ("sent", "SM42")


async def test_a_hold_that_changes_while_it_is_settled_is_not_settled(
    world: World, engine: Engine
) -> None:
    """Held again between the read and the write of a settling (PostgreSQL: a dispatcher
    committing meanwhile): the write, conditional on the hold the page showed, changes
    nothing and says why."""
    attempt_id = await held_message(world)
    first = shown_hold(world)
    fired: list[str] = []

    def held_again_meanwhile(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE ATTEMPT") and not fired:
            fired.append(statement)
            with engine.begin() as other:
                other.execute(
                    update(attempts).values(
                        tries=attempts.c.tries + 1, updated_at=world.clock.now()
                    )
                )

    event.listen(engine, "before_cursor_execute", held_again_meanwhile)
    try:
        with pytest.raises(ChangedMeanwhile, match="changed since the page was shown"):
            settled(world, attempt_id, Settlement.CANCEL, expected=first)
    finally:
        event.remove(engine, "before_cursor_execute", held_again_meanwhile)
    assert fired
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.reviewed_by) == (
        "unknown", first.tries + 1, None
    )  # fmt: skip
