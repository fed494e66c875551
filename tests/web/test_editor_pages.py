"""The template editor: the list, editing, the bounded preview, saving after lint,
publishing and rolling back, and who may do it. A real server on 127.0.0.1; SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, insert, select

from outreach.clock import FixedClock
from outreach.config import Settings
from outreach.models import Role, TemplateStatus
from outreach.rendering.context import SAMPLE_ACCOUNTS, load_company
from outreach.rendering.lint import LintPolicy
from outreach.template_store import (
    list_versions,
    publish_version,
    published,
    save_version,
    versions,
)
from outreach.users import user_by_name
from outreach.web import editor_pages
from outreach.web.app import create_app
from outreach.web.html_previews import HtmlPreviews, html_previews
from tests.conftest import NOW, REPO
from tests.web.conftest import Server, serving
from tests.web.ui_support import add_user, page_token, sign_in
from tests.web.ui_support import seed_templates as seed

SMS = "sms/overdue.firm.j2"
SMS_ES = "sms/overdue.firm.es.j2"
EMAIL = "email/overdue.firm.j2"
VOICE = "voice/overdue.firm.j2"
SMS_SOURCE = (REPO / "templates" / SMS).read_text()


@contextmanager
def marketer(server: Server, engine: Engine, role: Role = Role.MARKETER) -> Iterator[httpx.Client]:
    seed(engine)
    add_user(engine, "mia", role)
    with sign_in(server.base, "mia") as client:
        yield client


def preview_json(
    client: httpx.Client, path: str, source: str, sample: int = 1, token: str | None = None
) -> httpx.Response:
    token = token if token is not None else page_token(client, "/templates")
    return client.post(
        "/templates/preview",
        json={"path": path, "source": source, "sample": sample},
        headers={"X-CSRF-Token": token},
    )


def save(
    client: httpx.Client, path: str, source: str, action: str = "publish", **extra: str
) -> httpx.Response:
    """Post the editor's form as opened on version 1 (what seeding stores), unless
    ``based_on`` says another."""
    extra.setdefault("based_on", "1")
    form = {"csrf_token": page_token(client, "/templates"), "path": path, "source": source,
            "action": action, **extra}  # fmt: skip
    return client.post("/templates/save", data=form)


def versions_of(engine: Engine, path: str) -> list[tuple[int, str, str]]:
    return [(v.version, v.status, v.author) for v in list_versions(engine, path)]


def published_source(engine: Engine, path: str) -> str:
    with engine.connect() as connection:
        return published(connection).sources[path]


def test_the_list_shows_every_template_with_its_versions(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        save(client, SMS, SMS_SOURCE.replace("Please pay today", "Pay today"), action="draft")
        page = client.get("/templates")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        for path in (SMS, EMAIL, VOICE, "sms/reminder.friendly.es.j2", "_partials/sms_footer.j2"):
            assert f'href="/templates/edit?path={path}"' in page.text
        row = page.text.split(f'data-path="{SMS}"')[1].split("</tr>")[0]
        assert "v1" in row and "draft v2" in row and "by mia" in row
        other = page.text.split(f'data-path="{EMAIL}"')[1].split("</tr>")[0]
        assert "v1" in other and "draft" not in other and "by outreach init" in other


def test_the_edit_page_holds_the_source_samples_preview_and_versions(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        page = client.get("/templates/edit", params={"path": SMS})
        assert page.status_code == 200
        assert "Please pay today or set up a plan" in page.text  # the source
        assert page.text.count("<option") == len(SAMPLE_ACCOUNTS)  # the sample accounts
        assert 'class="message sms-text">Pat, your Northwind Utilities' in page.text
        assert '<script src="/static/editor.js" defer></script>' in page.text
        assert "Publish version" not in page.text  # one version, the published one
        assert client.get("/static/editor.js").status_code == 200
        missing = client.get("/templates/edit", params={"path": "sms/nothing.firm.j2"})
        assert missing.status_code == 404
        # A path no template could have is just as missing, on every route.
        assert client.get("/templates/edit", params={"path": "nonsense"}).status_code == 404
        assert preview_json(client, "nonsense", "x").status_code == 404
        assert save(client, "nonsense", "x").status_code == 404


def test_the_sms_preview_gives_the_text_and_its_segments(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        answer = preview_json(client, SMS, SMS_SOURCE)
        assert answer.status_code == 200
        body = answer.json()
        assert body["ok"] and body["issues"] == []
        assert body["sms"]["text"].startswith("Pat, your Northwind Utilities balance of $120.50")
        assert (body["sms"]["encoding"], body["sms"]["segments"]) == ("GSM-7", 2)
        assert "2 segments, GSM-7" in body["fragment"]
        # One character outside GSM-7 makes it UCS-2: more segments than the policy allows.
        wider = preview_json(client, SMS, SMS_SOURCE.replace("Please pay", "Please ő pay"))
        body = wider.json()
        assert body["sms"]["encoding"] == "UCS-2" and body["sms"]["non_gsm"] == ["ő"]
        assert {i["code"] for i in body["issues"]} == {"POLICY_SMS_TOO_MANY_SEGMENTS"}
        assert "UCS-2 because of &#39;ő&#39;" in body["fragment"]
        # Another sample: the Spanish speaker's amount and name.
        second = preview_json(client, SMS, SMS_SOURCE, sample=3).json()
        assert second["sms"]["text"].startswith("José,")
        assert published_source(engine, SMS) == SMS_SOURCE  # a preview stores nothing


def test_the_email_preview_gives_subject_text_and_a_sandboxed_html_body(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        source = published_source(engine, EMAIL)
        body = preview_json(client, EMAIL, source.replace("Action needed", "Please act")).json()
        assert body["ok"]
        assert body["email"]["subject"].startswith("Please act: $120.50 is 18 days past due")
        assert "Pat Smith," in body["email"]["text"]
        assert '<iframe class="email-html"' in body["fragment"]
        assert 'sandbox=""' in body["fragment"]
        html = client.get(body["email"]["html_url"])
        assert html.status_code == 200 and "Pay today" in html.text
        policy = html.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy
        assert "script-src" not in policy  # scripts fall back to default-src 'none'
        assert "style-src 'unsafe-inline'" in policy and "frame-ancestors 'self'" in policy
        # Only the user who rendered it sees it.
        add_user(engine, "max", Role.MARKETER)
        with sign_in(server.base, "max") as other:
            assert other.get(body["email"]["html_url"]).status_code == 404


def test_an_email_preview_is_served_by_another_web_process_to_its_user_only_for_a_while(
    server: Server, engine: Engine, settings: Settings
) -> None:
    clock = FixedClock(NOW)  # the previews' own clock, in both apps
    server.app.state.html_previews.clock = clock
    with (
        serving(create_app(settings, engine, clock=FixedClock(NOW))) as other,
        marketer(server, engine) as client,
    ):
        other.app.state.html_previews.clock = clock
        body = preview_json(client, EMAIL, published_source(engine, EMAIL)).json()
        html = client.get(other.base + body["email"]["html_url"])  # another machine, say
        assert html.status_code == 200 and "Pay today" in html.text
        assert html.headers["content-security-policy"].startswith("default-src 'none'")
        add_user(engine, "max", Role.MARKETER)
        with sign_in(other.base, "max") as stranger:
            assert stranger.get(body["email"]["html_url"]).status_code == 404
        forged = body["email"]["html_url"].rsplit("/", 1)[0] + "/a%00b"  # no 500 for a NUL
        assert client.get(other.base + forged).status_code == 404
        clock.advance(timedelta(minutes=15))
        assert client.get(other.base + body["email"]["html_url"]).status_code == 200
        clock.advance(timedelta(seconds=1))
        expired = client.get(other.base + body["email"]["html_url"])
        assert expired.status_code == 404 and "This preview has expired" in expired.text
        assert client.get(body["email"]["html_url"]).status_code == 404


def test_each_user_keeps_their_newest_previews_and_none_past_their_time(engine: Engine) -> None:
    add_user(engine, "mia", Role.MARKETER)
    add_user(engine, "max", Role.MARKETER)
    with engine.connect() as connection:
        mia, max_ = (user_by_name(connection, name).id for name in ("mia", "max"))
    clock = FixedClock(NOW)
    previews = HtmlPreviews(engine, kept=3, seconds=900, clock=clock)
    theirs = previews.put(max_, "<p>max</p>")
    tokens = [previews.put(mia, f"<p>{n}</p>") for n in range(5)]
    assert [previews.get(mia, token) for token in tokens] == [
        None, None, "<p>2</p>", "<p>3</p>", "<p>4</p>",
    ]  # fmt: skip
    assert previews.get(max_, theirs) == "<p>max</p>" and previews.get(mia, theirs) is None
    clock.advance(timedelta(seconds=901))
    previews.put(mia, "<p>later</p>")  # deletes everyone's past their time
    with engine.connect() as connection:
        kept = connection.execute(select(html_previews.c.html)).scalars().all()
    assert kept == ["<p>later</p>"]
    # A NUL, which PostgreSQL cannot store, shows as a browser would show it.
    token = previews.put(mia, "<p>a\x00b</p>")
    assert previews.get(mia, token) == "<p>a\ufffdb</p>"


def test_the_html_preview_escapes_the_debtors_name(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        body = preview_json(client, EMAIL, published_source(engine, EMAIL), sample=4).json()
        html = client.get(body["email"]["html_url"]).text
        assert "<script>" not in html and "&lt;script&gt;" in html


def test_the_voice_preview_gives_every_part_of_the_call(server: Server, engine: Engine) -> None:
    """In the order a person hears them: the identity check (asking for the sample's
    debtor), the message after the debtor's 1, the goodbye after someone else's 2."""
    with marketer(server, engine) as client:
        body = preview_json(client, VOICE, published_source(engine, VOICE), sample=2).json()
        voice = body["voice"]
        assert body["ok"] and voice["human"] and voice["voicemail"]
        assert "Northwind" in voice["voicemail"]
        name = SAMPLE_ACCOUNTS[1].debtor_name
        assert voice["identity_check"] == (
            f"Hello, this is Northwind Customer Care. This call is for {name}. If you are "
            f"{name}, press 1. If you are not, press 2."
        )
        assert voice["not_the_debtor"] == "Thank you. Sorry to have bothered you."
        fragment = body["fragment"]
        order = ["voice-identity-check", "voice-human", "voice-not-the-debtor", "voice-voicemail"]
        assert [fragment.index(f'class="message {part}"') for part in order] == sorted(
            fragment.index(f'class="message {part}"') for part in order
        )


@pytest.mark.parametrize(
    ("path", "expected"),
    [(SMS, 'class="message sms-text">Maximilian,'), (EMAIL, 'class="message email-subject">'),
     (VOICE, 'class="message voice-voicemail">')],
)  # fmt: skip
def test_without_javascript_the_form_previews_on_the_page(
    server: Server, engine: Engine, path: str, expected: str
) -> None:
    with marketer(server, engine) as client:
        source = published_source(engine, path)
        form = {"csrf_token": page_token(client, "/templates"), "path": path,
                "source": source, "sample": "2", "action": "preview"}  # fmt: skip
        page = client.post("/templates/preview", data=form)
        assert page.status_code == 200
        assert expected in page.text
        assert '<option value="2" selected>' in page.text
        assert "Lint finds nothing to fix." in page.text


def test_a_syntax_error_shows_its_line_in_the_preview(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        body = preview_json(client, SMS, "Hello\n{{ debtor.name }\n{{ opt_out_text }}").json()
        assert not body["ok"]
        assert body["issues"][0]["line"] == 2 and body["issues"][0]["code"] == "SYNTAX"
        assert "Line 2" in body["fragment"] and body["sms"] is None


def test_a_preview_request_that_cannot_be_read_is_refused_not_a_server_error(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        token = page_token(client, "/templates")
        headers = {"X-CSRF-Token": token, "Content-Type": "application/json"}
        unread = [
            (b'{"path": ', "the preview request is not JSON"),
            (b"[" * 100_000, "the preview request is nested too deeply"),
        ]
        for body, detail in unread:
            answer = client.post("/templates/preview", content=body, headers=headers)
            assert answer.status_code == 400
            assert answer.json() == {"detail": detail}


def test_a_syntax_error_is_refused_at_save_and_nothing_is_stored(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        broken = "Hello {{ debtor.first_name }},\n{% if amount %}\nPay now. {{ opt_out_text }}"
        page = save(client, SMS, broken)
        assert page.status_code == 422
        assert "Not saved: 1 issue to fix first." in page.text
        assert "<strong>Line 3</strong>" in page.text and "SYNTAX" in page.text
        assert "Unexpected end of template" in page.text
        assert "{% if amount %}\nPay now." in page.text  # the marketer's text is kept
        assert versions_of(engine, SMS) == [(1, TemplateStatus.PUBLISHED, "outreach init")]


def test_an_unknown_variable_is_refused(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        page = save(client, SMS, SMS_SOURCE.replace("{{ amount }}", "{{ amout }}"))
        assert page.status_code == 422
        assert "UNKNOWN_VARIABLE" in page.text and "&#39;amout&#39; is not a template" in page.text
        assert "<strong>Line 1</strong>" in page.text
        assert len(list_versions(engine, SMS)) == 1


def test_a_missing_opt_out_is_refused_like_publish_refuses_it(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        page = save(client, SMS, "Hi {{ debtor.first_name }}, please pay {{ amount }}.")
        assert page.status_code == 422 and "REGF_OPTOUT_NOTICE_MISSING" in page.text
        assert len(list_versions(engine, SMS)) == 1


def test_a_threat_of_suit_a_time_barred_debt_would_get_is_refused_at_save(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        threat = SMS_SOURCE.replace("Please pay today", "Pay today or we will sue you")
        assert threat != SMS_SOURCE
        page = save(client, SMS, threat)
        assert page.status_code == 422 and "REGF_TIME_BARRED_SUIT_THREAT" in page.text
        assert "<strong>Line 1</strong>" in page.text and "SAMPLE-8" in page.text
        assert len(list_versions(engine, SMS)) == 1
        guarded = SMS_SOURCE.replace(
            "Please pay today", "Pay today{% if not time_barred %} or we will sue you{% endif %}"
        )
        assert save(client, SMS, guarded).status_code == 303
        assert published_source(engine, SMS) == guarded


ENDLESS = (
    "{% for a in range(99999) %}{% for b in range(99999) %}{% for c in range(99999) %}"
    "{{ opt_out_text }}{% endfor %}{% endfor %}{% endfor %}"
)
HUGE = '{% set x = "x" * 90000 %}{% for i in range(99999) %}{{ x }}{% endfor %}{{ opt_out_text }}'
# Within a render's bounds, but slow: most of the work and the steps a render may take, for
# each sample.
SLOW = (
    "{{ (('a ' * 200000)|title)|length }}{% for a in range(300) %}{% for b in range(300) %}"
    "{% endfor %}{% endfor %}{{ opt_out_text }}"
)


def test_an_endless_template_is_stopped_at_once_on_its_line(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        body = preview_json(client, SMS, ENDLESS).json()
        assert [(i["code"], i["line"]) for i in body["issues"]] == [("RENDER_LIMIT", 1)]
        assert "took more than 100000 steps" in body["issues"][0]["message"]
        page = save(client, SMS, ENDLESS)
        assert page.status_code == 422 and "took more than 100000 steps" in page.text
        assert len(list_versions(engine, SMS)) == 1


def test_a_slow_template_is_stopped_in_the_preview_and_at_save(
    server: Server, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(editor_pages, "PREVIEW_SECONDS", 0.25)
    monkeypatch.setattr(editor_pages, "SAVE_SECONDS", 0.25)
    with marketer(server, engine) as client:
        body = preview_json(client, SMS, SLOW).json()
        assert [i["code"] for i in body["issues"]] == ["RENDER_LIMIT"]
        assert "took more than 0.25 s" in body["issues"][0]["message"]
        page = save(client, SMS, SLOW)
        assert page.status_code == 422 and "took more than 0.25 s" in page.text
        assert len(list_versions(engine, SMS)) == 1
        # The server is still there for the next request.
        assert preview_json(client, SMS, SMS_SOURCE).json()["ok"]


def test_saving_a_template_another_includes_lints_the_one_that_includes_it(
    server: Server, engine: Engine
) -> None:
    friendly = "sms/overdue.friendly.j2"
    with marketer(server, engine) as client:
        including = "Second notice. " + "z" * 50 + ' {% include "' + friendly + '" %}'
        assert save(client, SMS, including).status_code == 303
        # Fine alone, but it makes the firm SMS that includes it longer than three segments.
        text = (REPO / "templates" / friendly).read_text()
        page = save(client, friendly, text.replace("thank you.", "thank you. " + "y" * 100))
        assert page.status_code == 422
        assert re.search(r"sms/overdue\.firm\.j2.*segments", page.text, re.S)
        assert versions_of(engine, friendly) == [(1, TemplateStatus.PUBLISHED, "outreach init")]


def test_a_slow_partial_is_refused_at_its_first_template(
    server: Server, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(editor_pages, "SAVE_SECONDS", 0.25)
    path = "_partials/sms_footer.j2"
    with marketer(server, engine) as client:
        started = time.monotonic()
        page = save(client, path, SLOW)
        # Seven SMS templates include it: one limit, not seven, before the answer.
        assert time.monotonic() - started < 6
        assert page.status_code == 422 and "took more than 0.25 s" in page.text
        assert re.search(r"not checked and \d+ more: lint stopped at the template over", page.text)
        assert len(list_versions(engine, path)) == 1


def test_a_huge_template_is_stopped_by_a_renders_output_bound(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        body = preview_json(client, SMS, HUGE).json()
        assert not body["ok"] and body["sms"] is None
        assert "wrote more than 1000000 characters" in body["issues"][0]["message"]
        page = save(client, SMS, HUGE)
        assert page.status_code == 422 and len(list_versions(engine, SMS)) == 1


def test_save_and_publish_makes_the_version_the_daemon_uses(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        changed = SMS_SOURCE.replace("Please pay today", "Please pay now")
        response = save(client, SMS, changed.replace("\n", "\r\n"))
        assert response.status_code == 303
        page = client.get(response.headers["location"])
        assert "Saved and published version 2." in page.text
        assert versions_of(engine, SMS) == [
            (1, TemplateStatus.RETIRED, "outreach init"), (2, TemplateStatus.PUBLISHED, "mia"),
        ]  # fmt: skip
        assert published_source(engine, SMS) == changed  # line ends as the files have them


def test_a_draft_is_stored_unpublished_and_can_be_published_later(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        changed = SMS_SOURCE.replace("Please pay today", "Kindly pay today")
        assert save(client, SMS, changed, action="draft").status_code == 303
        assert versions_of(engine, SMS)[-1] == (2, TemplateStatus.DRAFT, "mia")
        assert published_source(engine, SMS) == SMS_SOURCE
        page = client.get("/templates/edit", params={"path": SMS})
        assert "Kindly pay today" in page.text  # the editor opens the latest version
        assert "Version 2 is the latest." in page.text
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS, "version": "2"}
        assert client.post("/templates/publish", data=form).status_code == 303
        assert published_source(engine, SMS) == changed


def test_saving_the_same_text_adds_no_version(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        response = save(client, SMS, SMS_SOURCE, action="draft")
        assert response.status_code == 303
        assert "version 1 holds this text" in client.get(response.headers["location"]).text
        assert versions_of(engine, SMS) == [(1, TemplateStatus.PUBLISHED, "outreach init")]


def based_on(page: httpx.Response) -> str:
    """The version the editor's form says its text started from."""
    found = re.search(r'name="based_on" value="(\d+)"', page.text)
    assert found is not None, "the editor's form carries no based_on"
    return found.group(1)


def test_a_save_on_top_of_a_version_saved_since_is_refused_and_the_text_kept(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as mia:
        add_user(engine, "max", Role.MARKETER)
        with sign_in(server.base, "max") as max_:
            # Both open the editor on version 1.
            hers = based_on(mia.get("/templates/edit", params={"path": SMS}))
            his = based_on(max_.get("/templates/edit", params={"path": SMS}))
            assert hers == his == "1"
            mine = SMS_SOURCE.replace("Please pay today", "Please pay now")
            assert save(mia, SMS, mine, action="draft", based_on=hers).status_code == 303
            # Max never saw version 2: publishing his text would drop Mia's change.
            changed = SMS_SOURCE.replace("Questions?", "Any questions?")
            refused = save(max_, SMS, changed, action="publish", based_on=his)
            assert refused.status_code == 409
            assert "Not saved: mia saved version 2 since you opened version 1." in refused.text
            assert "Any questions?" in refused.text  # his text, as he left it
            assert "-" + SMS_SOURCE.splitlines()[0].replace("'", "&#39;") in refused.text
            assert "+" + mine.splitlines()[0].replace("'", "&#39;") in refused.text
            assert versions_of(engine, SMS) == [
                (1, TemplateStatus.PUBLISHED, "outreach init"), (2, TemplateStatus.DRAFT, "mia"),
            ]  # fmt: skip
            # The refused page's form is based on version 2: saving again is deliberate.
            assert based_on(refused) == "2"
            merged = mine.replace("Questions?", "Any questions?")
            again = save(max_, SMS, merged, action="publish", based_on=based_on(refused))
            assert again.status_code == 303
    assert published_source(engine, SMS) == merged


def test_a_save_that_does_not_say_which_version_it_started_from_is_refused(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        changed = SMS_SOURCE.replace("Questions?", "Any questions?")
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS, "source": changed,
                "action": "publish"}  # fmt: skip
        page = client.post("/templates/save", data=form)
        assert page.status_code == 400
        assert "this page does not say which version it was opened on" in page.text
        assert "Any questions?" in page.text and based_on(page) == "1"
    assert versions_of(engine, SMS) == [(1, TemplateStatus.PUBLISHED, "outreach init")]


def test_without_javascript_the_preview_keeps_the_version_the_text_started_from(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        save(client, SMS, SMS_SOURCE.replace("Please pay today", "Please pay now"))
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS,
                "source": SMS_SOURCE, "based_on": "1", "action": "preview"}  # fmt: skip
        page = client.post("/templates/preview", data=form)
        assert page.status_code == 200 and based_on(page) == "1"


def test_a_preview_of_a_page_without_based_on_does_not_make_its_save_pass(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        # Someone saves version 2 while an old editor page (opened on version 1, no
        # based_on field) is still being edited.
        newer = SMS_SOURCE.replace("Please pay today", "Please pay now")
        assert save(client, SMS, newer, action="draft").status_code == 303
        old = SMS_SOURCE.replace("Questions?", "Any questions?")
        # The old page's form: no based_on.
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS, "source": old,
                "action": "preview"}  # fmt: skip
        page = client.post("/templates/preview", data=form)
        assert page.status_code == 200 and "Any questions?" in page.text
        # Still without it: the page's save is refused rather than dropping version 2.
        assert 'name="based_on"' not in page.text
        saved = client.post("/templates/save", data={**form, "action": "draft"})
        assert saved.status_code == 400
        assert "this page does not say which version it was opened on" in saved.text
    assert [v for v, _, _ in versions_of(engine, SMS)] == [1, 2]


def test_a_nul_in_the_source_is_refused_with_its_line_and_nothing_is_stored(
    server: Server, engine: Engine
) -> None:
    source = (REPO / "templates" / EMAIL).read_text()
    source = source.replace("{% block text %}", "{% block text %}{# \x00 #}", 1)
    line = source[: source.index("\x00")].count("\n") + 1
    with marketer(server, engine) as client:
        page = save(client, EMAIL, source, action="draft")
        assert page.status_code == 400
        assert f"Not saved: line {line} holds a NUL character." in page.text
        assert "{# " in page.text  # the marketer's text is kept
        preview = preview_json(client, EMAIL, source).json()
        assert not preview["ok"] and preview["issues"][0]["code"] == "NUL_CHARACTER"
    assert versions_of(engine, EMAIL) == [(1, TemplateStatus.PUBLISHED, "outreach init")]


def test_a_text_longer_than_the_editor_takes_is_kept_in_it_with_the_reason(
    server: Server, engine: Engine
) -> None:
    longer = "x" * (editor_pages.SOURCE_CHARS + 1)
    reason = (
        "the template is 100,001 characters long; the editor takes at most 100,000, and a "
        "template or partial may have 50,000"
    )
    with marketer(server, engine) as client:
        edit = client.get("/templates/edit", params={"path": SMS})
        assert 'maxlength="100000"' in edit.text  # the browser stops typing there
        page = save(client, SMS, longer, action="draft")
        assert page.status_code == 413 and page.headers["content-type"].startswith("text/html")
        assert f"Not saved: {reason}. Your text is kept below" in page.text
        assert f">\n{longer}</textarea>" in page.text
        assert "<code>TOO_LARGE</code>" in page.text
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS, "source": longer,
                "based_on": "1", "action": "preview"}  # fmt: skip
        previewed = client.post("/templates/preview", data=form)
        assert previewed.status_code == 413
        assert f"Not previewed: {reason}." in previewed.text
        assert f">\n{longer}</textarea>" in previewed.text
        answer = preview_json(client, SMS, longer)
        assert answer.status_code == 413
        assert answer.json() == {"detail": reason}  # not the text back
    assert versions_of(engine, SMS) == [(1, TemplateStatus.PUBLISHED, "outreach init")]


def test_the_longest_text_the_editor_takes_reaches_lint_however_its_characters_are_sent(
    server: Server, engine: Engine
) -> None:
    """The most a form's textarea sends, 100,000 characters of three UTF-8 bytes (its
    ``maxlength`` counts an emoji as two), is 900 KB percent-encoded; 100,000 emoji in the
    script's JSON (two "\\uXXXX" each) 1.2 MB: both within the editor's body limit."""
    lint_says = "100,000 characters; a template or partial may have 50,000"
    with marketer(server, engine) as client:
        page = save(client, SMS, "\u20ac" * editor_pages.SOURCE_CHARS, action="draft")
        assert page.status_code == 422 and lint_says in page.text
        longest = "\U0001f600" * editor_pages.SOURCE_CHARS
        body = json.dumps({"path": SMS, "source": longest}).encode()
        assert len(body) > 1_200_000
        headers = {"X-CSRF-Token": page_token(client, "/templates"),
                   "Content-Type": "application/json"}  # fmt: skip
        answer = client.post("/templates/preview", content=body, headers=headers)
        assert answer.status_code == 200
        assert [i["code"] for i in answer.json()["issues"]] == ["TOO_LARGE"]
        assert lint_says in answer.json()["issues"][0]["message"]


def test_line_ends_are_counted_as_the_template_stores_them(server: Server, engine: Engine) -> None:
    """A browser sends the textarea's line ends as CRLF; the template keeps LF."""
    crlf = "x\r\n" * 40_000  # 120,000 characters sent, 80,000 stored
    lint_says = "80,000 characters; a template or partial may have 50,000"
    with marketer(server, engine) as client:
        page = save(client, SMS, crlf, action="draft")
        assert page.status_code == 422 and lint_says in page.text
        answer = preview_json(client, SMS, crlf)
        assert answer.status_code == 200
        assert [i["code"] for i in answer.json()["issues"]] == ["TOO_LARGE"]
        assert lint_says in answer.json()["issues"][0]["message"]


def test_a_nul_in_an_emails_html_is_shown_as_an_issue_not_rendered(
    server: Server, engine: Engine
) -> None:
    source = (REPO / "templates" / EMAIL).read_text()
    source = source.replace("{% block html %}", "{% block html %}\x00", 1)
    with marketer(server, engine) as client:
        answer = preview_json(client, EMAIL, source)
        assert answer.status_code == 200
        assert [i["code"] for i in answer.json()["issues"]] == ["NUL_CHARACTER"]
        assert answer.json()["email"] is None


def test_a_path_holding_a_nul_is_refused_with_the_reason(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        page = client.get("/templates/edit", params={"path": "sms/over\x00due.firm.j2"})
        form = {"csrf_token": page_token(client, "/templates"), "path": "sms/x\x00.firm.j2"}
        back = client.post("/templates/rollback", data=form)
        publish = client.post("/templates/publish", data={**form, "version": "1"})
    for answer in (page, back, publish):
        assert answer.status_code == 400
        assert "A template&#39;s path holds no NUL character." in answer.text


def test_rollback_publishes_the_version_before(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        save(client, SMS, SMS_SOURCE.replace("Please pay today", "Please pay now"))
        page = client.get("/templates/edit", params={"path": SMS})
        assert "Roll back to version 1" in page.text
        assert 'name="rolling_back" value="2"' in page.text
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS, "rolling_back": "2"}
        response = client.post("/templates/rollback", data=form)
        assert response.status_code == 303
        assert "version 1 is published again" in client.get(response.headers["location"]).text
        assert published_source(engine, SMS) == SMS_SOURCE
        # Nothing before version 1: refused, with the reason.
        again = client.post("/templates/rollback", data={**form, "rolling_back": "1"})
        assert again.status_code == 409 and "nothing to roll back to" in again.text


def test_a_rollback_from_a_page_that_shows_another_published_version_is_refused(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        bad = SMS_SOURCE.replace("Please pay today", "Please pay now")
        assert save(client, SMS, bad, based_on="1").status_code == 303  # version 2 published
        page = client.get("/templates/edit", params={"path": SMS})
        assert "Roll back to version 1" in page.text  # what the marketer clicks
        # Meanwhile a colleague publishes version 3.
        assert save(client, SMS, bad.replace("Questions?", "Any questions?"),
                    based_on="2").status_code == 303  # fmt: skip
        seen = re.search(r'name="rolling_back" value="(\d+)"', page.text)
        assert seen is not None
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS,
                "rolling_back": seen.group(1)}  # fmt: skip
        stale = client.post("/templates/rollback", data=form)
        # A form without the field (a page from before it) says nothing of what it saw.
        unsaid = client.post("/templates/rollback", data={**form, "rolling_back": ""})
    assert stale.status_code == 409
    assert "version 3 is published now, not version 2 as you saw: nothing was changed" in (
        stale.text
    )
    assert unsaid.status_code == 400 and "does not say which version" in unsaid.text
    assert [s for _, s, _ in versions_of(engine, SMS)] == ["retired", "retired", "published"]


def test_retiring_leaves_no_version_published(server: Server, engine: Engine) -> None:
    with marketer(server, engine) as client:
        page = client.get("/templates/edit", params={"path": SMS})
        assert "Retire version 1 (publish none)" in page.text
        form = {"csrf_token": page_token(client, "/templates"), "path": SMS, "retiring": "1"}
        # A template a cadence's step sends is not retired from under the accounts at it.
        sent = client.post("/templates/retire", data=form)
        assert sent.status_code == 409
        assert "sms/overdue.firm.j2 is sent by cadence standard, step overdue-" in sent.text
        answer = {**form, "path": "email/answer.agent.j2"}
        assert (
            "is sent by the agents&#39; answers"
            in client.post("/templates/retire", data=answer).text
        )
        form["path"] = SMS_ES
        retired = client.post("/templates/retire", data=form)
        assert retired.status_code == 303
        shown = client.get(retired.headers["location"]).text
        assert "Retired version 1: no version is published" in shown
        assert "No version is published: the daemon cannot send this template." in shown
        # The page shown before no longer holds: refused, nothing changes.
        again = client.post("/templates/retire", data=form)
        assert again.status_code == 409 and "no version is published now" in again.text
        # A partial published templates include cannot be retired from under them.
        footer = {**form, "path": "_partials/sms_footer.j2"}
        used = client.post("/templates/retire", data=footer)
        assert used.status_code == 409 and "is used by sms/" in used.text
    assert versions_of(engine, SMS_ES) == [(1, TemplateStatus.RETIRED, "outreach init")]
    assert versions_of(engine, SMS) == [(1, TemplateStatus.PUBLISHED, "outreach init")]
    with engine.connect() as connection:
        assert SMS_ES not in published(connection).sources


def test_rollback_is_refused_when_the_version_before_breaks_the_sms_limit(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    channels = tmp_path / "channels"
    shutil.copytree(REPO / "channels", channels)
    sms_yaml = channels / "sms.yaml"
    sms_yaml.write_text(sms_yaml.read_text().replace("max_segments: 3", "max_segments: 2"))
    strict = settings.model_copy(update={"channels_dir": channels})
    seed(engine)
    clock = FixedClock(NOW)
    company = load_company(REPO / "templates")
    three_segments = SMS_SOURCE.replace("Please pay today", "Please pay today. " + "x" * 40)
    # Version 2 was published while the limit was three segments.
    save_version(engine, SMS, three_segments, clock, author="ops")
    publish_version(engine, SMS, company, clock, version=2, policy=LintPolicy(3))
    with serving(create_app(strict, engine, clock=clock)) as server:
        add_user(engine, "mia", Role.MARKETER)
        with sign_in(server.base, "mia") as client:
            # Two segments even for a debt collector's first text, with the whole disclosure.
            short = (
                "{{ debtor.first_name }}, please pay {{ amount }}: {{ payment_link }}\n"
                '{%- include "_partials/sms_footer.j2" %}\n'
            )
            assert save(client, SMS, short, based_on="2").status_code == 303  # version 3
            form = {"csrf_token": page_token(client, "/templates"), "path": SMS}
            publish = client.post("/templates/publish", data={**form, "version": "2"})
            back = client.post("/templates/rollback", data={**form, "rolling_back": "3"})
    assert publish.status_code == 409
    assert back.status_code == 409 and "the limit is 2" in back.text
    assert [v.status for v in list_versions(engine, SMS)] == ["retired", "retired", "published"]


def test_other_roles_are_refused_and_strangers_sent_to_sign_in(
    server: Server, engine: Engine
) -> None:
    seed(engine)
    for name, role in (("ana", Role.AGENT), ("vic", Role.VIEWER)):
        add_user(engine, name, role)
        with sign_in(server.base, name) as client:
            token = page_token(client)
            assert client.get("/templates").status_code == 403
            assert client.get("/templates/edit", params={"path": SMS}).status_code == 403
            assert preview_json(client, SMS, SMS_SOURCE, token=token).status_code == 403
            assert save(client, SMS, SMS_SOURCE + " x", csrf_token=token).status_code == 403
    add_user(engine, "ada", Role.ADMIN)
    with sign_in(server.base, "ada") as client:
        assert client.get("/templates").status_code == 200
    with httpx.Client(base_url=server.base) as stranger:
        response = stranger.get("/templates/edit", params={"path": SMS})
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=%2Ftemplates%2Fedit")
        answer = stranger.post("/templates/preview", json={"path": SMS, "source": ""},
                               headers={"X-CSRF-Token": "x"})  # fmt: skip
        assert answer.status_code == 401
    assert len(list_versions(engine, SMS)) == 1


def test_save_and_preview_without_the_sessions_token_are_refused(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        changed = SMS_SOURCE.replace("Please pay today", "Please pay now")
        for token in ("", "forged"):
            form: dict[str, Any] = {"path": SMS, "source": changed, "action": "publish"}
            if token:
                form["csrf_token"] = token
            assert client.post("/templates/save", data=form).status_code == 403
            answer = client.post(
                "/templates/preview", json={"path": SMS, "source": changed},
                headers={"X-CSRF-Token": token} if token else {},
            )  # fmt: skip
            assert answer.status_code == 403
        form = {"path": SMS}
        assert client.post("/templates/rollback", data=form).status_code == 403
        assert len(list_versions(engine, SMS)) == 1


def test_a_partial_is_checked_through_the_templates_that_use_it(
    server: Server, engine: Engine
) -> None:
    with marketer(server, engine) as client:
        path = "_partials/sms_footer.j2"
        body = preview_json(client, path, "{{ nothing_here }}").json()
        assert not body["ok"]
        assert "nothing_here" in body["issues"][0]["message"]
        assert body["issues"][0]["path"] == "sms/answer.agent.j2"  # a template that uses it
        page = save(client, path, "Thanks.")  # drops the opt-out every SMS needs
        assert page.status_code == 422 and "REGF_OPTOUT_NOTICE_MISSING" in page.text
        assert re.search(r"sms/overdue\.firm\.j2", page.text)
        assert len(list_versions(engine, path)) == 1


def test_a_template_published_under_a_name_lint_now_refuses_does_not_block_its_partial(
    server: Server, engine: Engine
) -> None:
    footer = "_partials/sms_footer.j2"
    with marketer(server, engine) as client:
        # Published by an earlier release, whose lint accepted any variant name.
        source = (REPO / "templates" / "sms/overdue.firm.es.j2").read_text()
        with engine.begin() as connection:
            connection.execute(insert(versions).values(
                channel="sms", name="overdue", tone="firm", locale="ES", version=1,
                content=source, content_hash="h", status="published", author="old",
                created_at=NOW, published_at=NOW,
            ))  # fmt: skip
        changed = published_source(engine, footer) + " "
        assert preview_json(client, footer, changed).json()["issues"] == []
        assert save(client, footer, changed).status_code == 303
    assert versions_of(engine, footer)[-1][:2] == (2, TemplateStatus.PUBLISHED)
