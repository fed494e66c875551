"""Real adapters behind the dispatch stage: an answer that leaves it unclear whether the
provider took the message holds the attempt for review, and nothing sends it again."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import httpx
import pytest
import respx
from pydantic import SecretStr

from outreach.channels import RateLimit, RateLimits, load_email, load_sms
from outreach.compliance_store import attempts
from outreach.config import Settings
from outreach.dispatcher import MAX_TRIES
from outreach.providers.base import Provider
from outreach.providers.sendgrid_email import SendgridEmail
from outreach.providers.transport import make_http_client
from outreach.providers.twilio_sms import TwilioSms
from outreach.ratelimit import RateLimiter
from tests.conftest import REPO
from tests.providers.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    PUBLIC,
    SECRET_KEY,
    SENDGRID_KEY,
    load_json,
)
from tests.test_dispatcher import dispatcher, outboxes, planned, the_attempt, world
from tests.test_import_accounts import row
from tests.test_planner import World, rows_of

pytestmark = pytest.mark.anyio
__all__ = ["world"]  # a fixture, used by name

MESSAGES = f"https://twilio.test/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
SEND = "https://sendgrid.test/v3/mail/send"
CREATED = httpx.Response(201, json={"sid": "SM" + "a" * 32, "status": "queued"})


def with_providers(base: Settings) -> Settings:
    return base.model_copy(
        update={
            "secret_key": SecretStr(SECRET_KEY),
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": SecretStr(AUTH_TOKEN),
            "twilio_from_number": "+16175550100",
            "twilio_api_base_url": "https://twilio.test",
            "sendgrid_api_key": SecretStr(SENDGRID_KEY),
            "sendgrid_api_base_url": "https://sendgrid.test",
            "sendgrid_from_email": "billing@example.com",
            "public_base_url": PUBLIC,
        }
    )


def providers(world: World, router: respx.MockRouter) -> dict[str, Provider]:
    settings = with_providers(world.settings)
    client = make_http_client(transport=httpx.MockTransport(router.handler))
    return {
        **outboxes(world),
        "sms": TwilioSms(settings, client, world.clock, load_sms(REPO / "channels")),
        "email": SendgridEmail(settings, client, world.clock, load_email(REPO / "channels")),
    }


async def sent_again_later(world: World, router: respx.MockRouter) -> None:
    """Tick again a minute, then a day later, from this daemon and from another."""
    send = dispatcher(world, providers(world, router))
    world.clock.advance(timedelta(minutes=1))
    assert (await send.tick()).claimed == 0
    world.clock.advance(timedelta(days=1))
    other = dispatcher(world, providers(world, router), worker="worker-2")
    assert (await other.tick()).claimed == 0


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_server_error_holds_the_text_for_review(world: World, status: int) -> None:
    # A gateway timing out on its upstream answers 502/504 although the message may exist.
    planned(world, row("A-1"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(MESSAGES).mock(
        side_effect=[httpx.Response(status, text="upstream timed out"), CREATED]
    )
    report = await dispatcher(world, providers(world, router)).tick()
    assert dict(report.outcomes) == {"unknown": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries, attempt.sent_at) == ("unknown", 1, None)
    assert "hold it for review" in attempt.error_message

    await sent_again_later(world, router)
    assert route.call_count == 1
    assert the_attempt(world).status == "unknown"


async def test_a_503_is_sent_again_after_a_backoff(world: World) -> None:
    planned(world, row("A-1"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(MESSAGES).mock(
        side_effect=[httpx.Response(503, headers={"Retry-After": "30"}), CREATED]
    )
    send = dispatcher(world, providers(world, router))
    assert dict((await send.tick()).outcomes) == {"retry": 1}
    attempt = the_attempt(world)
    assert attempt.status == "queued"
    world.clock.set(attempt.next_try_at)
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    assert route.call_count == 2
    assert the_attempt(world).status == "sent"


async def test_an_email_accepted_without_a_message_id_is_held_for_review(world: World) -> None:
    planned(world, row("A-2", due_date="2026-10-30"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(SEND).respond(202)
    report = await dispatcher(world, providers(world, router)).tick()
    assert dict(report.outcomes) == {"unknown": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.provider_message_id) == ("unknown", None)

    await sent_again_later(world, router)
    assert route.call_count == 1


async def test_credentials_refused_hold_every_text_until_they_are_fixed(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotated token refuses every message: not the messages' fault. The batch's other
    texts are not sent to be refused alike; they all wait, with no try counted, the error
    is logged once, and they go once the credentials work again."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    refused = httpx.Response(401, json=load_json("rest/twilio_errors.json")["20003"])
    route = router.post(MESSAGES).mock(side_effect=[refused] + [CREATED] * 3)
    # Three texts a second: the first one's answer comes before the second would leave.
    limiter = RateLimiter({"sms": RateLimits(default=RateLimit(per_second=3, burst=1))})
    send = dispatcher(world, providers(world, router), limiter)
    assert dict((await send.tick()).outcomes) == {"retry": 3}
    assert route.call_count == 1
    waiting = rows_of(world.engine, attempts)
    assert [(a.status, a.tries, a.error_code) for a in waiting] == [("queued", 0, "20003")] * 3
    told = [r for r in caplog.records if "the messages wait and are tried again" in r.message]
    assert len(told) == 1 and "authentication failed: check TWILIO_ACCOUNT_SID" in told[0].message

    world.clock.set(max(a.next_try_at for a in waiting))  # the token is fixed meanwhile
    assert dict((await send.tick()).outcomes) == {"sent": 3}
    assert route.call_count == 4


async def test_an_api_key_refused_holds_the_email_until_it_is_fixed(world: World) -> None:
    planned(world, row("A-2", due_date="2026-10-30"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(SEND).mock(
        side_effect=[
            httpx.Response(401, json=load_json("rest/sendgrid_errors.json")["401"]),
            httpx.Response(202, headers={"X-Message-Id": "sg-1"}),
        ]
    )
    send = dispatcher(world, providers(world, router))
    assert dict((await send.tick()).outcomes) == {"retry": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries) == ("queued", 0)
    assert "check SENDGRID_API_KEY" in attempt.error_message
    world.clock.set(attempt.next_try_at)
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    assert route.call_count == 2


async def held_until_fixed(world: World, refused: httpx.Response) -> list[tuple[str, int]]:
    """Three texts, the first refused with ``refused`` and the rest accepted: how the
    attempts stand after the first tick; then the setting is fixed and all three go."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(MESSAGES).mock(side_effect=[refused] + [CREATED] * 3)
    # Three texts a second: the first one's answer comes before the second would leave.
    limiter = RateLimiter({"sms": RateLimits(default=RateLimit(per_second=3, burst=1))})
    send = dispatcher(world, providers(world, router), limiter)
    assert dict((await send.tick()).outcomes) == {"retry": 3}
    assert route.call_count == 1  # the others are not sent to be refused alike
    waiting = rows_of(world.engine, attempts)
    world.clock.set(max(a.next_try_at for a in waiting))
    assert dict((await send.tick()).outcomes) == {"sent": 3}
    assert route.call_count == 4
    return [(a.status, a.tries) for a in waiting]


@pytest.mark.parametrize("code", ["21212", "21601"])
async def test_a_from_number_twilio_refuses_holds_every_text_until_it_is_fixed(
    world: World, code: str
) -> None:
    """A mistyped TWILIO_FROM_NUMBER, or one not on the account: Twilio refuses every text
    alike. None is failed for it and no try is counted; they go once it is fixed."""
    refused = httpx.Response(400, json=load_json("rest/twilio_errors.json")[code])
    assert await held_until_fixed(world, refused) == [("queued", 0)] * 3


@pytest.mark.parametrize("code", ["21606", "21659"])
async def test_a_text_one_destination_cannot_get_fails_alone_after_its_tries(
    world: World, code: str, caplog: pytest.LogCaptureFixture
) -> None:
    """21606 and 21659 also come for one destination the sender cannot reach (a short
    code texting a debtor abroad): that text is tried again with the backoff and fails
    after its tries; the other texts go at once, and none waits on it."""
    abroad = "+447911123456"
    planned(world, row("A-1", phone=abroad),
            *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(2, 5)))  # fmt: skip
    refused = load_json("rest/twilio_errors.json")[code]

    def answer(request: httpx.Request) -> httpx.Response:
        to = httpx.QueryParams(request.content.decode())["To"]
        return httpx.Response(400, json=refused) if to == abroad else CREATED

    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(MESSAGES).mock(side_effect=answer)
    limiter = RateLimiter({"sms": RateLimits(default=RateLimit(per_second=3, burst=1))})
    send = dispatcher(world, providers(world, router), limiter)
    with caplog.at_level(logging.WARNING, logger="outreach.dispatcher"):
        assert dict((await send.tick()).outcomes) == {"sent": 3, "retry": 1}
    # Said in the log, for a wrong sending number refused alike for every text.
    [told] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "check TWILIO_FROM_NUMBER if every text is refused" in told
    assert abroad not in told
    for _ in range(MAX_TRIES - 1):
        [waiting] = [a for a in rows_of(world.engine, attempts) if a.status == "queued"]
        world.clock.set(waiting.next_try_at)
        await send.tick()
    final = {a.to_address: (a.status, a.tries) for a in rows_of(world.engine, attempts)}
    assert final[abroad] == ("failed", MAX_TRIES)
    assert [status for to, (status, _) in final.items() if to != abroad] == ["sent"] * 3
    assert route.call_count == 3 + MAX_TRIES


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_holds_every_text_until_the_base_url_is_fixed(
    world: World, status: int
) -> None:
    """TWILIO_API_BASE_URL on http://, or a proxy, answers with a redirect: Twilio never saw
    the message. Every text waits for the setting, none is failed for it."""
    redirect = httpx.Response(status, headers={"Location": MESSAGES})
    assert await held_until_fixed(world, redirect) == [("queued", 0)] * 3


async def test_a_see_other_holds_the_text_for_review(world: World) -> None:
    # 303 is how a server answers a POST it has acted on: the message may exist.
    planned(world, row("A-1"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(MESSAGES).mock(
        side_effect=[httpx.Response(303, headers={"Location": MESSAGES}), CREATED]
    )
    report = await dispatcher(world, providers(world, router)).tick()
    assert dict(report.outcomes) == {"unknown": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.sent_at) == ("unknown", None)
    assert "hold it for review" in attempt.error_message

    await sent_again_later(world, router)
    assert route.call_count == 1


async def test_a_redirected_email_waits_until_the_base_url_is_fixed(world: World) -> None:
    planned(world, row("A-2", due_date="2026-10-30"))
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    route = router.post(SEND).mock(
        side_effect=[
            httpx.Response(308, headers={"Location": SEND}),
            httpx.Response(202, headers={"X-Message-Id": "sg-1"}),
        ]
    )
    send = dispatcher(world, providers(world, router))
    assert dict((await send.tick()).outcomes) == {"retry": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.tries) == ("queued", 0)
    world.clock.set(attempt.next_try_at)
    assert dict((await send.tick()).outcomes) == {"sent": 1}
    assert route.call_count == 2


async def test_a_long_error_code_from_a_proxy_fails_its_text_alone(world: World) -> None:
    """A firewall before Twilio refuses one text of a batch with a code longer than the
    column keeps: that text fails, and the texts Twilio took keep their ids."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 5)))
    code = "REQUEST_BLOCKED_BY_WEB_APPLICATION_FIREWALL"
    answers = iter(
        [
            httpx.Response(201, json={"sid": "SM" + "1" * 32, "status": "queued"}),
            httpx.Response(403, json={"code": code, "message": "blocked " * 100}),
            httpx.Response(201, json={"sid": "SM" + "3" * 32, "status": "queued"}),
            httpx.Response(201, json={"sid": "SM" + "4" * 32, "status": "queued"}),
        ]
    )
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    router.post(MESSAGES).mock(side_effect=lambda _: next(answers))
    report = await dispatcher(world, providers(world, router)).tick()
    assert dict(report.outcomes) == {"sent": 3, "failed": 1}
    rows = rows_of(world.engine, attempts)
    assert sorted(a.provider_message_id for a in rows if a.status == "sent") == [
        "SM" + digit * 32 for digit in "134"
    ]
    [refused] = [a for a in rows if a.status == "failed"]
    assert refused.error_code == code[:32]
    assert refused.error_message.startswith("twilio_sms: HTTP 403 error " + code)
    assert len(refused.error_message) == 500  # the firewall's words, cut to the column


async def test_an_email_sendgrid_refuses_keeps_sendgrids_reason(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """SendGrid's 400 says why in errors[].message (a sender or reply-to it will not take):
    the failed attempt keeps it for the operator, and no log line quotes it."""
    planned(world, row("A-2", due_date="2026-10-30"))
    reason = "The reply_to email does not contain a valid address."
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    router.post(SEND).respond(400, json={"errors": [{"message": reason, "field": "reply_to"}]})
    with caplog.at_level(logging.DEBUG):
        report = await dispatcher(world, providers(world, router)).tick()
    assert dict(report.outcomes) == {"failed": 1}
    attempt = the_attempt(world)
    assert (attempt.status, attempt.error_code) == ("failed", "400")
    assert attempt.error_message == (
        "sendgrid_email: HTTP 400 error 400 (the request was invalid); not retried; "
        f"the provider said: {reason} (reply_to)"
    )
    assert not [r for r in caplog.records if reason in r.getMessage()]


@pytest.mark.parametrize("said", ["The 'To' number \u0000 is not valid", "Bad \ud83d character"])
async def test_a_nul_or_half_a_surrogate_in_twilios_words_fails_its_text_alone(
    world: World, said: str
) -> None:
    """PostgreSQL's text refuses a NUL, psycopg half of a surrogate pair: the refused text
    keeps the rest of the words, and the texts Twilio took keep their ids."""
    planned(world, *(row(f"A-{i}", phone=f"+1617555010{i}") for i in range(1, 4)))
    answers = iter(
        [
            httpx.Response(201, json={"sid": "SM" + "1" * 32, "status": "queued"}),
            # As JSON spells them (\u0000, \ud83d), which json.loads reads as they are.
            httpx.Response(400, content=json.dumps({"code": 21211, "message": said}).encode()),
            httpx.Response(201, json={"sid": "SM" + "3" * 32, "status": "queued"}),
        ]
    )
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    router.post(MESSAGES).mock(side_effect=lambda _: next(answers))
    report = await dispatcher(world, providers(world, router)).tick()
    assert dict(report.outcomes) == {"sent": 2, "failed": 1}
    rows = rows_of(world.engine, attempts)
    assert sorted(a.provider_message_id for a in rows if a.status == "sent") == [
        "SM" + digit * 32 for digit in "13"
    ]
    [refused] = [a for a in rows if a.status == "failed"]
    kept = said.replace("\u0000", "").replace("\ud83d", "\ufffd")
    assert refused.error_message.endswith(f"the provider said: {kept}")
