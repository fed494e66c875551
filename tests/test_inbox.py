"""The inbox feed on every backend: open replies newest first, unknown senders, handling
the last open reply ends the reply pause."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, update

from outreach.agent_actions import (
    AccountRef,
    ActionRefused,
    ChangedMeanwhile,
    ShownPause,
    account_by_reference,
    handle_reply,
    promise,
    resume,
)
from outreach.agent_actions import clear_flag as agent_clear_flag
from outreach.agent_actions import pause as agent_pause
from outreach.compliance_store import inbox_messages
from outreach.errors import NotFoundError
from outreach.events import apply_events
from outreach.housekeeping import housekeeping
from outreach.inbox import clear_flag, handle, open_replies, thread
from outreach.models import Role
from outreach.replies import REPLY_PAUSE_REASON
from outreach.store import accounts, promises_to_pay
from outreach.users import create_user
from tests.conftest import NOW
from tests.eventdata import OTHER_PHONE, account, add_account, inbound


def account_ref(account_id: int, engine: Engine) -> AccountRef:
    with engine.connect() as connection:
        return account_by_reference(connection, account(engine, account_id).reference)


def shown(engine: Engine, account_id: int) -> ShownPause:
    """The account's pause, as its page shows it now."""
    row = account(engine, account_id)
    return ShownPause(row.paused_until, row.pause_reason)


def paused_account(engine: Engine, days: int = 3, reason: str = "travelling (ana)") -> int:
    """An account an agent paused at ``NOW`` for ``days``."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        agent_pause(connection, account_ref(account_id, engine), days, reason, NOW)
    return account_id


def _replies(engine: Engine) -> None:
    for n, text in enumerate(["I paid yesterday", "This is not my debt", "Who is this?"]):
        sender = OTHER_PHONE if n == 2 else "+16175550101"
        at = NOW + timedelta(minutes=n)
        apply_events(engine, [inbound(text, sender=sender, key=f"r{n}", at=at)], at)


def test_open_replies_newest_first_with_their_account(engine: Engine) -> None:
    account_id = add_account(engine)
    _replies(engine)
    with engine.connect() as connection:
        feed = open_replies(connection)
        disputes = open_replies(connection, intent="dispute")
        unknown = open_replies(connection, unknown_sender=True)
        page = open_replies(connection, limit=1, before_id=feed[0].id)
    assert [(i.intent, i.account_id) for i in feed] == [
        ("other", None), ("dispute", account_id), ("paid", account_id),
    ]  # fmt: skip
    assert feed[1].reference == "R-1" and feed[1].flag == "dispute"
    assert [i.body for i in disputes] == ["This is not my debt"]
    assert [i.from_address for i in unknown] == [OTHER_PHONE]
    assert [i.intent for i in page] == ["dispute"]


def test_handling_the_last_open_reply_ends_the_reply_pause(engine: Engine) -> None:
    account_id = add_account(engine)
    _replies(engine)
    with engine.connect() as connection:
        first, second = [i.id for i in open_replies(connection, unknown_sender=False)]
    later = NOW + timedelta(hours=1)
    with engine.begin() as connection:
        handle(connection, first, later)
    assert account(engine, account_id).paused_until is not None  # one reply still open
    with engine.begin() as connection:
        handle(connection, second, later)
        clear_flag(connection, account_id, later)
    resumed = account(engine, account_id)
    assert (resumed.paused_until, resumed.pause_reason, resumed.next_contact_at) == (
        None, None, later,
    )  # fmt: skip
    assert resumed.flag is None
    with engine.connect() as connection:
        assert {m.status for m in thread(connection, account_id)} == {"handled"}


def test_a_pause_set_for_another_reason_is_left_alone(engine: Engine) -> None:
    account_id = add_account(engine)
    apply_events(engine, [inbound("Call me")], NOW)
    with engine.begin() as connection:
        connection.execute(
            update(accounts)
            .where(accounts.c.id == account_id)
            .values(paused_until=NOW + timedelta(days=90), pause_reason="hardship review")
        )
        (item,) = open_replies(connection)
        handle(connection, item.id, NOW)
    assert account(engine, account_id).pause_reason == "hardship review"


def test_handling_a_message_that_does_not_exist(engine: Engine) -> None:
    with engine.begin() as connection, pytest.raises(NotFoundError):
        handle(connection, 999, NOW)


def test_a_reply_during_an_agents_pause_keeps_it_and_the_reply_pause_follows(
    engine: Engine,
) -> None:
    account_id = paused_account(engine)
    replied = NOW + timedelta(days=1)
    apply_events(engine, [inbound("Back next week", at=replied)], replied)
    paused = account(engine, account_id)
    assert (paused.paused_until, paused.pause_reason) == (
        NOW + timedelta(days=3), "travelling (ana)",
    )  # fmt: skip
    # The agent's pause ends with the reply still open: the reply pause takes over, from
    # the reply's arrival.
    ends = NOW + timedelta(days=3, minutes=1)
    done = housekeeping(engine, ends, reply_pause=timedelta(days=14))
    assert done.pauses_ended == 0
    held = account(engine, account_id)
    assert (held.paused_until, held.pause_reason) == (
        replied + timedelta(days=14), REPLY_PAUSE_REASON,
    )  # fmt: skip
    with engine.begin() as connection:
        (item,) = open_replies(connection)
        handle(connection, item.id, ends)
    resumed = account(engine, account_id)
    assert (resumed.paused_until, resumed.next_contact_at) == (None, ends)


def test_an_agents_pause_ends_as_set_once_the_reply_is_handled(engine: Engine) -> None:
    account_id = paused_account(engine)
    apply_events(engine, [inbound("Back next week", at=NOW)], NOW)
    with engine.begin() as connection:
        (item,) = open_replies(connection)
        handle(connection, item.id, NOW + timedelta(hours=1))
    assert account(engine, account_id).pause_reason == "travelling (ana)"
    ends = NOW + timedelta(days=3)
    assert housekeeping(engine, ends, reply_pause=timedelta(days=14)).pauses_ended == 1
    resumed = account(engine, account_id)
    assert (resumed.paused_until, resumed.pause_reason) == (None, None)
    assert resumed.next_contact_at <= ends  # due


def test_a_reply_after_a_pause_ran_out_gets_the_reply_pause(engine: Engine) -> None:
    account_id = paused_account(engine, 1, "call back (ana)")
    later = NOW + timedelta(days=2)  # the pause ran out; housekeeping has not run yet
    apply_events(engine, [inbound("Hello?", at=later)], later)
    held = account(engine, account_id)
    assert (held.paused_until, held.pause_reason) == (
        later + timedelta(days=14), REPLY_PAUSE_REASON,
    )  # fmt: skip


REPLY_PAUSE = timedelta(days=14)


def test_resuming_an_agents_pause_with_a_reply_open_hands_over_to_the_reply_pause(
    engine: Engine,
) -> None:
    account_id = paused_account(engine)
    replied = NOW + timedelta(days=1)
    apply_events(engine, [inbound("Back next week", at=replied)], replied)
    resumed_at = replied + timedelta(hours=1)
    with engine.begin() as connection:
        held = resume(connection, account_ref(account_id, engine), resumed_at,
                      reply_pause=REPLY_PAUSE, shown=shown(engine, account_id))  # fmt: skip
    assert held == replied + REPLY_PAUSE
    paused = account(engine, account_id)
    assert (paused.paused_until, paused.pause_reason) == (held, REPLY_PAUSE_REASON)
    # Handling the reply ends the reply pause, as for any reply.
    handled_at = resumed_at + timedelta(hours=1)
    with engine.begin() as connection:
        (item,) = open_replies(connection)
        handle(connection, item.id, handled_at)
    running = account(engine, account_id)
    assert (running.paused_until, running.pause_reason, running.next_contact_at) == (
        None, None, handled_at,
    )  # fmt: skip


def test_resuming_an_agents_pause_once_the_reply_is_handled_runs_at_once(
    engine: Engine,
) -> None:
    account_id = paused_account(engine)
    apply_events(engine, [inbound("Back next week", at=NOW)], NOW)
    later = NOW + timedelta(hours=2)
    with engine.begin() as connection:
        (item,) = open_replies(connection)
        handle(connection, item.id, NOW + timedelta(hours=1))
        assert resume(connection, account_ref(account_id, engine), later,
                      reply_pause=REPLY_PAUSE, shown=shown(engine, account_id)) is None  # fmt: skip
    running = account(engine, account_id)
    assert (running.paused_until, running.pause_reason, running.next_contact_at) == (
        None, None, later,
    )  # fmt: skip


def test_resuming_a_reply_pause_ends_it_and_handling_the_reply_later_changes_nothing(
    engine: Engine,
) -> None:
    account_id = add_account(engine)
    apply_events(engine, [inbound("Who is this?", at=NOW)], NOW)
    assert account(engine, account_id).pause_reason == REPLY_PAUSE_REASON
    later = NOW + timedelta(hours=1)
    with engine.begin() as connection:
        assert resume(connection, account_ref(account_id, engine), later,
                      reply_pause=REPLY_PAUSE, shown=shown(engine, account_id)) is None  # fmt: skip
    with engine.begin() as connection:
        (item,) = open_replies(connection)  # still waits for an agent
        handle(connection, item.id, later + timedelta(days=1))
    running = account(engine, account_id)
    assert (running.paused_until, running.pause_reason, running.next_contact_at) == (
        None, None, later,
    )  # fmt: skip
    # Nothing is left to hand over when a later pause of the agent's runs out.
    with engine.begin() as connection:
        agent_pause(connection, account_ref(account_id, engine), 1, "call back (ana)", later)
    done = housekeeping(engine, later + timedelta(days=1), reply_pause=REPLY_PAUSE)
    assert done.pauses_ended == 1
    assert account(engine, account_id).paused_until is None


@contextmanager
def a_reply_arrives_as_a_pause_ends(engine: Engine, at: datetime) -> Iterator[None]:
    """The debtor's reply comes in from another connection just as this thread is about to
    end the account's pause, and lands then unless it waits for this thread's transaction;
    after the block (which commits that transaction) it has landed."""
    me = threading.current_thread()
    started: list[threading.Thread] = []

    def reply(_c: Any, _cursor: Any, text: str, *_: Any) -> None:
        ending = text.startswith("UPDATE account SET") and "pause_reason=" in text
        if threading.current_thread() is me and not started and ending:
            late = [inbound("Also, I can pay 20 a week", key="late", at=at)]
            started.append(threading.Thread(target=apply_events, args=(engine, late, at)))
            started[0].start()
            started[0].join(1.0)  # landed by now, unless it waits for this transaction

    event.listen(engine, "before_cursor_execute", reply)
    try:
        yield
    finally:
        event.remove(engine, "before_cursor_execute", reply)
        for thread in started:
            thread.join(60)
    assert started and not started[0].is_alive()


def test_a_reply_arriving_as_an_agent_resumes_keeps_the_account_paused(engine: Engine) -> None:
    """The account is locked before its replies are read: the reply waits for the resume,
    then finds no pause and pauses the account under the reply pause."""
    account_id = paused_account(engine)
    at = NOW + timedelta(hours=1)
    seen = shown(engine, account_id)
    with a_reply_arrives_as_a_pause_ends(engine, at), engine.begin() as connection:
        resume(connection, account_ref(account_id, engine), at, reply_pause=REPLY_PAUSE,
               shown=seen)  # fmt: skip
    with engine.connect() as connection:
        assert len(open_replies(connection)) == 1
    paused = account(engine, account_id)
    assert (paused.pause_reason, paused.paused_until) == (REPLY_PAUSE_REASON, at + REPLY_PAUSE)


def test_a_pause_is_ended_or_changed_only_from_a_page_that_showed_it(engine: Engine) -> None:
    """Ana's page shows her 1-day pause; Bob pauses the account for 60 days: neither her
    resume nor her new pause from that page replaces his, and nothing is written."""
    account_id = paused_account(engine, 1, "call back tomorrow (ana)")
    anas_page = shown(engine, account_id)
    with engine.begin() as connection:
        agent_pause(connection, account_ref(account_id, engine), 60, "debtor in hospital",
                    NOW, by="bob", shown=anas_page)  # fmt: skip
    later = NOW + timedelta(minutes=5)
    for act in (
        lambda c: resume(c, account_ref(account_id, engine), later, reply_pause=REPLY_PAUSE,
                         shown=anas_page),
        lambda c: agent_pause(c, account_ref(account_id, engine), 2, "call back", later,
                              by="ana", shown=anas_page),
    ):  # fmt: skip
        refused = pytest.raises(ChangedMeanwhile, match="debtor in hospital \\(bob\\)")
        with refused, engine.begin() as connection:
            act(connection)
    kept = account(engine, account_id)
    assert (kept.paused_until, kept.pause_reason) == (
        NOW + timedelta(days=60), "debtor in hospital (bob)",
    )  # fmt: skip
    # A page that showed outreach running does not pause over a pause it did not show.
    with pytest.raises(ChangedMeanwhile, match="Not paused"), engine.begin() as connection:
        agent_pause(connection, account_ref(account_id, engine), 2, "call back", later,
                    by="ana", shown=ShownPause(None))  # fmt: skip


def test_a_pause_that_ran_out_is_no_pause_to_a_page(engine: Engine) -> None:
    """Guards against refusing too much: a page showed a pause that has run out since
    (housekeeping cleared it, or not yet): outreach runs either way, nothing the agent did
    not see, and the agent's new pause or resume goes ahead."""
    account_id = paused_account(engine, 1)
    page = shown(engine, account_id)
    later = NOW + timedelta(days=2)
    with engine.begin() as connection:
        agent_pause(connection, account_ref(account_id, engine), 3, "call back", later,
                    by="ana", shown=ShownPause(None))  # fmt: skip
    assert account(engine, account_id).pause_reason == "call back (ana)"
    housekeeping(engine, later + timedelta(days=4), reply_pause=REPLY_PAUSE)
    assert account(engine, account_id).paused_until is None
    with engine.begin() as connection:
        resume(connection, account_ref(account_id, engine), later + timedelta(days=4),
               reply_pause=REPLY_PAUSE, shown=page)  # fmt: skip
    assert account(engine, account_id).paused_until is None


def test_resuming_a_pause_that_ran_out_with_a_reply_open_hands_over_to_the_reply_pause(
    engine: Engine,
) -> None:
    """The agent's page showed a 1-day pause, the debtor replied during it, and the agent
    resumes once it has run out but before housekeeping ends it: the account goes under the
    reply pause, as housekeeping would have put it, not back to outreach."""
    account_id = paused_account(engine, 1, "call back (ana)")
    page = shown(engine, account_id)
    replied = NOW + timedelta(hours=12)
    apply_events(engine, [inbound("I'll pay Friday, please hold", at=replied)], replied)
    later = NOW + timedelta(days=1, minutes=5)
    with engine.begin() as connection:
        held = resume(connection, account_ref(account_id, engine), later,
                      reply_pause=REPLY_PAUSE, shown=page)  # fmt: skip
    assert held == replied + REPLY_PAUSE
    paused = account(engine, account_id)
    assert (paused.paused_until, paused.pause_reason) == (held, REPLY_PAUSE_REASON)


@pytest.mark.parametrize(
    ("reason", "by", "problem"),
    [("x" * 195, "ana", "the reason is 195 characters: at most 194"),
     ("x" * 201, None, "the reason is 201 characters: at most 200")],
)  # fmt: skip
def test_a_pause_reason_longer_than_kept_is_refused_not_cut(
    engine: Engine, reason: str, by: str | None, problem: str
) -> None:
    account_id = add_account(engine)
    with pytest.raises(ActionRefused, match=problem), engine.begin() as connection:
        agent_pause(connection, account_ref(account_id, engine), 3, reason, NOW, by=by)
    assert account(engine, account_id).paused_until is None
    with engine.begin() as connection:  # as long as is kept, the agent's name included
        agent_pause(connection, account_ref(account_id, engine), 3, "y" * 194, NOW, by="ana")
    assert account(engine, account_id).pause_reason == "y" * 194 + " (ana)"


def test_a_reply_arriving_as_the_last_one_is_handled_keeps_the_reply_pause(
    engine: Engine,
) -> None:
    account_id = add_account(engine)
    apply_events(engine, [inbound("Who is this?", key="first", at=NOW)], NOW)
    at = NOW + timedelta(minutes=2)
    with engine.connect() as connection:
        (first,) = open_replies(connection)
    with a_reply_arrives_as_a_pause_ends(engine, at), engine.begin() as connection:
        handle(connection, first.id, at)
    with engine.connect() as connection:
        (waiting,) = open_replies(connection)
    assert waiting.id != first.id
    paused = account(engine, account_id)
    assert (paused.pause_reason, paused.paused_until) == (REPLY_PAUSE_REASON, at + REPLY_PAUSE)


def test_two_agents_on_one_reply_the_second_is_refused_and_the_first_keeps_it(
    engine: Engine,
) -> None:
    """Ben opens the reply's form after Ana and sends it while hers is being written: he
    waits for her transaction, then is refused; the reply keeps her name."""
    account_id = add_account(engine)
    with engine.begin() as connection:
        ana, ben = (create_user(connection, name, "correct horse battery", Role.AGENT, NOW).id
                    for name in ("ana", "ben"))  # fmt: skip
    apply_events(engine, [inbound("Who is this?", key="first", at=NOW)], NOW)
    with engine.connect() as connection:
        (reply,) = open_replies(connection)
    ref = account_ref(account_id, engine)
    refused: list[str] = []

    def bens_request() -> None:
        try:
            with engine.begin() as connection:
                handle_reply(connection, ref, reply.id, ben, NOW)
        except ActionRefused as exc:
            refused.append(str(exc))

    with engine.begin() as connection:
        handle_reply(connection, ref, reply.id, ana, NOW)
        second = threading.Thread(target=bens_request)
        second.start()
        second.join(1.0)  # waits for this transaction
    second.join(60)
    assert refused == [f"message {reply.id} was already handled"]
    with engine.connect() as connection:
        handled_by = connection.execute(
            select(inbox_messages.c.handled_by).where(inbox_messages.c.id == reply.id)
        ).scalar_one()
    assert handled_by == ana


def text_to_two_accounts(engine: Engine) -> tuple[int, int, int, int]:
    """Accounts R-A and R-B with the same phone, and one text from it, stored on each:
    (R-A, R-B, the text on R-A, the text on R-B)."""
    a = add_account(engine, "R-A")
    b = add_account(engine, "R-B")
    apply_events(engine, [inbound("Can I pay on Friday?", key="r1", at=NOW)], NOW)
    with engine.connect() as connection:
        [on_a, on_b] = connection.execute(
            select(inbox_messages.c.id, inbox_messages.c.account_id).order_by(inbox_messages.c.id)
        ).all()
    assert (on_a.account_id, on_b.account_id) == (a, b)
    return a, b, on_a.id, on_b.id


def test_a_message_on_two_accounts_is_listed_once_naming_both(engine: Engine) -> None:
    """The inbox lists a message stored on two accounts once, as its first copy, with the
    other account beside it (and its flag): two rows would read as two messages, and two
    agents would take them up."""
    _, b, on_a, on_b = text_to_two_accounts(engine)
    with engine.begin() as connection:
        connection.execute(update(accounts).where(accounts.c.id == b).values(flag="dispute"))
    with engine.connect() as connection:
        [item] = open_replies(connection)
        assert (item.id, item.reference, item.also) == (on_a, "R-A", (("R-B", "dispute"),))
        # A copy handled on its own (an older release did so) leaves the other listed alone.
        connection.execute(
            update(inbox_messages).where(inbox_messages.c.id == on_a).values(status="handled")
        )
        [item] = open_replies(connection)
        assert (item.id, item.reference, item.also) == (on_b, "R-B", ())
        # Filters and pages see the one row.
        assert [i.id for i in open_replies(connection, unknown_sender=False)] == [on_b]
        assert open_replies(connection, before_id=on_b) == []


def test_handling_one_accounts_copy_of_a_text_handles_the_others(engine: Engine) -> None:
    """A text from a number two accounts have is one message, stored on each: handled on
    one account's page, it is handled on the other's, with the same agent's name, and each
    account's reply pause ends with its last open reply (R-B has another one still)."""
    a, b, on_a, on_b = text_to_two_accounts(engine)
    with engine.begin() as connection:
        ana, ben = (create_user(connection, name, "correct horse battery", Role.AGENT, NOW).id
                    for name in ("ana", "ben"))  # fmt: skip
        other = connection.execute(
            inbox_messages.insert()
            .values(account_id=b, direction="inbound", channel="email",
                    from_address="pat@example.com", to_address="billing@example.com",
                    body="And the fee?", status="open", received_at=NOW)
            .returning(inbox_messages.c.id)
        ).scalar_one()  # fmt: skip
    later = NOW + timedelta(hours=1)
    with engine.begin() as connection:
        handle_reply(connection, account_ref(a, engine), on_a, ana, later)
    with engine.connect() as connection:
        handled = connection.execute(
            select(
                inbox_messages.c.id, inbox_messages.c.status, inbox_messages.c.handled_by
            ).order_by(inbox_messages.c.id)
        ).all()
    assert [tuple(row) for row in handled] == [
        (on_a, "handled", ana), (on_b, "handled", ana), (other, "open", None),
    ]  # fmt: skip
    resumed = account(engine, a)
    assert (resumed.pause_reason, resumed.next_contact_at) == (None, later)
    assert account(engine, b).pause_reason == REPLY_PAUSE_REASON
    on_r_b = account_ref(b, engine)
    with pytest.raises(ActionRefused) as refused, engine.begin() as connection:
        handle_reply(connection, on_r_b, on_b, ben, later)
    # The account it was handled on is named: nothing on R-B's page shows it.
    reference = account_ref(a, engine).reference
    assert str(refused.value) == (
        f"message {on_b} was already handled "
        f"(it is also on account {reference}, from the same sender)"
    )


def test_two_agents_handling_two_accounts_copies_at_once_handle_it_once(
    engine: Engine,
) -> None:
    """Ana handles the text on R-A's page while Ben handles it on R-B's: whichever comes
    second waits, then is refused, and no deadlock fails either (the copies are locked
    in one order)."""
    a, b, on_a, on_b = text_to_two_accounts(engine)
    with engine.begin() as connection:
        ana, ben = (create_user(connection, name, "correct horse battery", Role.AGENT, NOW).id
                    for name in ("ana", "ben"))  # fmt: skip
    start = threading.Barrier(2, timeout=30)
    outcomes: list[BaseException | int] = []

    def handles(account_id: int, reply: int, user: int) -> None:
        ref = account_ref(account_id, engine)
        try:
            start.wait()
            with engine.begin() as connection:
                handle_reply(connection, ref, reply, user, NOW)
            outcomes.append(user)
        except BaseException as exc:
            outcomes.append(exc)

    agents = [threading.Thread(target=handles, args=(a, on_a, ana)),
              threading.Thread(target=handles, args=(b, on_b, ben))]  # fmt: skip
    for agent in agents:
        agent.start()
    for agent in agents:
        agent.join(timeout=60)
    assert not any(agent.is_alive() for agent in agents)
    [first] = [o for o in outcomes if isinstance(o, int)]
    [refused] = [o for o in outcomes if isinstance(o, ActionRefused)]
    assert "was already handled" in str(refused)
    with engine.connect() as connection:
        handled_by = connection.execute(
            select(inbox_messages.c.handled_by).order_by(inbox_messages.c.id)
        ).scalars()
        assert list(handled_by) == [first, first]


def test_one_promise_form_sent_twice_at_once_records_one_promise(engine: Engine) -> None:
    """The second copy of a form comes while the first's promise is being written: it waits
    (on PostgreSQL for the unique index's entry, on SQLite for the writer's lock), then
    records nothing; a promise without a form's key (the command line's) is not affected."""
    ref = account_ref(add_account(engine), engine)
    key = "k" * 24
    second: list[int | None] = []

    def again() -> None:
        with engine.begin() as connection:
            second.append(promise(connection, ref, 5000, NOW.date(), "ana", NOW, form_key=key))

    with engine.begin() as connection:
        made = promise(connection, ref, 5000, NOW.date(), "ana", NOW, form_key=key)
        waiting = threading.Thread(target=again)
        waiting.start()
        waiting.join(1.0)  # waits for this transaction
        assert waiting.is_alive()
    waiting.join(60)
    assert made is not None and second == [None]
    with engine.begin() as connection:
        assert promise(connection, ref, 1000, NOW.date(), "ana", NOW) is not None
        assert promise(connection, ref, 1000, NOW.date(), "ana", NOW) is not None
        kept = connection.execute(
            select(promises_to_pay.c.form_key).order_by(promises_to_pay.c.id)
        ).scalars()
        assert list(kept) == [key, None, None]


def test_a_flag_a_reply_raises_while_one_is_cleared_is_never_cleared_unseen(
    engine: Engine,
) -> None:
    """A reply naming an attorney comes while an agent clears the dispute flag their page
    showed: either the reply waits and flags the account again, or the clear sees the new
    flag and refuses. Here the clear holds the account first."""
    account_id = add_account(engine)
    apply_events(engine, [inbound("This is not my debt", key="d")], NOW)
    shown = account(engine, account_id)
    ref = account_ref(account_id, engine)
    later = NOW + timedelta(minutes=1)

    def reply() -> None:
        apply_events(engine, [inbound("Talk to my attorney", key="a", at=later)], later)

    with engine.begin() as connection:
        agent_clear_flag(connection, ref, "dispute", shown.flagged_at, NOW)
        arriving = threading.Thread(target=reply)
        arriving.start()
        arriving.join(1.0)
    arriving.join(60)
    flagged = account(engine, account_id)
    assert (flagged.flag, flagged.flagged_at) == ("attorney", later)
    with engine.begin() as connection, pytest.raises(ChangedMeanwhile, match="now attorney"):
        agent_clear_flag(connection, ref, "dispute", shown.flagged_at, later)
    assert account(engine, account_id).flag == "attorney"
