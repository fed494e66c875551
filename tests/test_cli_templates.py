"""The marketer's loop from the command line: lint, preview, sync, publish, roll back."""

from __future__ import annotations

import getpass
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, select
from typer.testing import CliRunner

from outreach import store
from outreach.cli import app
from outreach.models import TemplateVersion
from outreach.store import table_of
from tests.conftest import NOW, REPO
from tests.test_cli import outreach
from tests.test_import_accounts import HEADER, row, write_csv


@pytest.fixture
def workdir(tmp_path: Path, env: dict[str, str]) -> Path:
    for folder in ("templates", "schedules", "channels"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    env.pop("SCHEDULES_DIR", None)
    return tmp_path


def test_lint_passes_the_shipped_templates_and_refuses_a_broken_one(
    workdir: Path,
    env: dict[str, str],
) -> None:
    ok = outreach("templates", "lint", env=env, cwd=workdir)
    assert ok.returncode == 0, ok.stdout
    assert "0 issue(s)" in ok.stdout
    sms = workdir / "templates/sms/overdue.firm.j2"
    sms.write_text(
        sms.read_text(encoding="utf-8").replace("{{ amount }}", "{{ amout }}"), encoding="utf-8"
    )
    broken = outreach("templates", "lint", "sms/overdue.firm.j2", env=env, cwd=workdir)
    assert broken.returncode == 1
    assert (
        "sms/overdue.firm.j2:1: UNKNOWN_VARIABLE: 'amout' is not a template variable"
        in broken.stdout
    )


def test_preview_shows_what_the_debtor_receives(workdir: Path, env: dict[str, str]) -> None:
    sms = outreach(
        "templates", "preview", "overdue", "-c", "sms", "-t", "firm", env=env, cwd=workdir
    )
    assert sms.returncode == 0, sms.stderr
    assert "segments, GSM-7" in sms.stdout
    assert "Reply STOP to opt out." in sms.stdout
    email = outreach(
        "templates", "preview", "reminder", "-c", "email", "-t", "friendly", "--sample", "4",
        env=env, cwd=workdir,
    )  # fmt: skip
    assert "Subject: Reminder: $5.00 due on September 1, 2026" in email.stdout
    assert "Hi <script>alert" in email.stdout  # the text body is plain text
    assert "&lt;script&gt;" in email.stdout  # the HTML body is escaped
    voice = outreach(
        "templates", "preview", "overdue", "-c", "voice", "-t", "firm", env=env, cwd=workdir
    )
    assert "limited-content message" in voice.stdout
    assert "Jordan Lee" in voice.stdout


def test_preview_for_a_real_account_in_its_language(workdir: Path, env: dict[str, str]) -> None:
    outreach("init", env=env, cwd=workdir)
    path = write_csv(workdir / "a.csv", [row("ES-1", name="José Núñez", locale="es_US")])
    outreach("accounts", "import", str(path), env=env, cwd=workdir)
    result = outreach(
        "templates", "preview", "overdue", "-c", "sms", "-t", "firm", "--account", "ES-1",
        env=env, cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sms/overdue.firm.es.j2 for ES-1" in result.stdout
    assert "José, su saldo de $120.50" in result.stdout
    # The sample data's options would be ignored for a real account: refused, not ignored.
    for option, value in (("--locale", "en_US"), ("--sample", "2")):
        refused = outreach(
            "templates", "preview", "overdue", "-c", "sms", "-t", "firm", "--account", "ES-1",
            option, value, env=env, cwd=workdir,
        )  # fmt: skip
        assert refused.returncode == 2 and not refused.stdout
        assert f"{option} is for the sample data: --account renders" in refused.stderr


def test_preview_for_a_real_account_knows_whether_its_debt_is_time_barred(
    workdir: Path, env: dict[str, str]
) -> None:
    sms = workdir / "templates/sms/overdue.firm.j2"
    notice = "{% if time_barred %}Notice: this debt is time-barred.{% endif %} Questions?"
    sms.write_text(sms.read_text(encoding="utf-8").replace("Questions?", notice, 1))
    outreach("init", env=env, cwd=workdir)
    header = [*HEADER, "time_barred_on"]
    rows = [row("OLD-1", time_barred_on="2000-01-01"), row("NEW-1", time_barred_on="2199-12-31")]
    outreach("accounts", "import", str(write_csv(workdir / "a.csv", rows, header)), env=env,
             cwd=workdir)  # fmt: skip
    shown: dict[str, bool] = {}
    for reference in ("OLD-1", "NEW-1"):
        result = outreach(
            "templates", "preview", "overdue", "-c", "sms", "-t", "firm", "--account",
            reference, env=env, cwd=workdir,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        shown[reference] = "Notice: this debt is time-barred." in result.stdout
    assert shown == {"OLD-1": True, "NEW-1": False}


def test_preview_prints_an_accounts_name_as_it_is(workdir: Path, env: dict[str, str]) -> None:
    """Names come from the creditor's import: brackets in one are text, never the terminal's
    markup (which failed on "[/]" and dropped "[red]")."""
    email = workdir / "templates/email/overdue.firm.j2"
    email.write_text(
        email.read_text(encoding="utf-8").replace(
            "{% block subject %}", "{% block subject %}{{ debtor.name }}: "
        ),
        encoding="utf-8",
    )
    outreach("init", env=env, cwd=workdir)
    names = {"A-1": "Acme [/] Ltd", "A-2": "Ann [red]Smith", "A-3": "Bo [bold]Li[/bold]"}
    path = write_csv(workdir / "a.csv", [row(ref, name=name) for ref, name in names.items()])
    outreach("accounts", "import", str(path), env=env, cwd=workdir)
    for reference, name in names.items():
        result = outreach(
            "templates", "preview", "overdue", "-c", "email", "-t", "firm", "--account",
            reference, env=env, cwd=workdir,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"Subject: {name}: Action needed" in result.stdout
        assert f"email/overdue.firm.j2 for {reference} (en_US)" in result.stdout


def test_lint_prints_what_it_found_as_it_is(workdir: Path, env: dict[str, str]) -> None:
    """A lint line quotes a file's name and the template's text: brackets in them stay."""
    (workdir / "templates/sms/[red]x.firm.j2").write_text("Hi", encoding="utf-8")
    result = outreach("templates", "lint", env=env, cwd=workdir)
    assert result.returncode == 1, result.stderr
    assert "sms/[red]x.firm.j2: REGF_OPTOUT_NOTICE_MISSING" in result.stdout


def test_preview_in_a_locale_without_an_english_of_its_own(
    workdir: Path, env: dict[str, str]
) -> None:
    # sms/due.friendly.j2 has no Spanish variant, and Babel no English of Mexico.
    result = outreach(
        "templates", "preview", "due", "-c", "sms", "-t", "friendly", "--locale", "es_MX",
        env=env, cwd=workdir,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sms/due.friendly.j2 for SAMPLE-1 (es_MX)" in result.stdout
    assert "Hi Pat, your Northwind Utilities payment of $120.50 is due today." in result.stdout


def test_sync_publish_and_rollback(workdir: Path, env: dict[str, str]) -> None:
    init = outreach("init", env=env, cwd=workdir)
    # A new database starts with the template files published as version 1.
    assert "Published 23 template(s) from templates." in init.stdout
    first = outreach("templates", "sync", "--publish", "--author", "maria", env=env, cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert "0 added, 23 unchanged." in first.stdout
    again = outreach("init", env=env, cwd=workdir)
    assert "Published" not in again.stdout  # seeding happens once
    sms = workdir / "templates/sms/overdue.firm.j2"
    sms.write_text(
        sms.read_text(encoding="utf-8").replace("Please pay today", "Please pay now"),
        encoding="utf-8",
    )
    second = outreach("templates", "sync", "--author", "li", env=env, cwd=workdir)
    assert "added sms/overdue.firm.j2 version 2" in second.stdout
    assert (
        outreach("templates", "publish", "sms/overdue.firm.j2", env=env, cwd=workdir).returncode
        == 0
    )
    live = outreach(
        "templates",
        "preview",
        "overdue",
        "-c",
        "sms",
        "-t",
        "firm",
        "--published",
        env=env,
        cwd=workdir,
    )
    assert "Please pay now" in live.stdout
    back = outreach("templates", "rollback", "sms/overdue.firm.j2", env=env, cwd=workdir)
    assert "rolled back sms/overdue.firm.j2 to version 1" in back.stdout
    versions = outreach("templates", "versions", "sms/overdue.firm.j2", env=env, cwd=workdir)
    assert "retired" in versions.stdout
    assert "li" in versions.stdout
    sent = outreach("templates", "retire", "sms/overdue.firm.j2", env=env, cwd=workdir)
    assert sent.returncode == 2
    assert "sms/overdue.firm.j2 is sent by cadence standard, step overdue-" in sent.stderr
    variant = "sms/overdue.firm.es.j2"
    retired = outreach("templates", "retire", variant, env=env, cwd=workdir)
    assert f"retired {variant} version 1: no version is published" in retired.stdout
    again = outreach("templates", "retire", variant, env=env, cwd=workdir)
    assert again.returncode == 2 and "has no published version to retire" in again.stderr
    sms.write_text("{% if %}", encoding="utf-8")
    refused = outreach("templates", "sync", env=env, cwd=workdir)
    assert refused.returncode == 2
    assert "SYNTAX" in refused.stdout
    assert "nothing was stored" in refused.stderr
    # A NUL (which PostgreSQL cannot store) is refused by the file's name, not a traceback.
    sms.write_text("Pay now.\n{# \x00 #}", encoding="utf-8")
    nul = outreach("templates", "sync", env=env, cwd=workdir)
    assert nul.returncode == 2
    assert "sms/overdue.firm.j2:2: NUL_CHARACTER" in nul.stdout
    assert "nothing was stored" in nul.stderr and "Traceback" not in nul.stderr


def test_rollback_is_refused_when_the_version_before_breaks_the_sms_limit(
    workdir: Path, env: dict[str, str]
) -> None:
    outreach("init", env=env, cwd=workdir)
    sms = workdir / "templates/sms/overdue.firm.j2"
    source = sms.read_text(encoding="utf-8")
    sms.write_text(source.replace("Please pay today", "Please pay today. " + "x" * 40))
    assert outreach("templates", "sync", "--publish", env=env, cwd=workdir).returncode == 0
    sms.write_text(source.replace("Please pay today", "Pay today"), encoding="utf-8")
    assert outreach("templates", "sync", "--publish", env=env, cwd=workdir).returncode == 0
    channel = workdir / "channels/sms.yaml"
    channel.write_text(channel.read_text().replace("max_segments: 3", "max_segments: 2"))
    back = outreach("templates", "rollback", "sms/overdue.firm.j2", env=env, cwd=workdir)
    assert back.returncode != 0
    assert "version 2 of sms/overdue.firm.j2 is refused" in back.stderr
    versions = outreach("templates", "versions", "sms/overdue.firm.j2", env=env, cwd=workdir)
    (live,) = [line for line in versions.stdout.splitlines() if "published" in line]
    assert live.split("│")[1].strip() == "3"


def test_cadence_mistakes_name_file_step_and_reason(workdir: Path, env: dict[str, str]) -> None:
    assert "standard: 9 steps, valid." in outreach("cadences", "check", env=env, cwd=workdir).stdout
    path = workdir / "schedules/standard.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("channel: voice", "channel: fax", 1),
        encoding="utf-8",
    )
    result = outreach("cadences", "check", env=env, cwd=workdir)
    assert result.returncode == 2
    assert "standard.yaml: step 6 (overdue-21d): unknown channel 'fax'" in result.stderr


def test_cadence_check_warns_of_step_keys_recorded_that_the_file_does_not_name(
    workdir: Path, env: dict[str, str], engine: Engine
) -> None:
    """A renamed step is a new one to the accounts that had it under its old name."""
    accounts = workdir / "accounts.csv"
    write_csv(accounts, [row("A-1"), row("A-2", cadence="pre-due")])
    assert outreach("accounts", "import", str(accounts), env=env, cwd=workdir).returncode == 0
    with engine.begin() as connection:
        ids = dict(
            connection.execute(select(store.accounts.c.reference, store.accounts.c.id)).all()
        )
        connection.execute(insert(store.cadence_steps), [
            {"account_id": ids[ref], "step_key": key, "outcome": "sent", "at": NOW}
            for ref, key in (("A-1", "reminder-7d"), ("A-1", "overdue-3d"), ("A-2", "reminder-7d"))
        ])  # fmt: skip
    path = workdir / "schedules/standard.yaml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("key: overdue-3d", "key: overdue-3d-email"), encoding="utf-8")
    result = outreach("cadences", "check", env=env, cwd=workdir)
    assert result.returncode == 0, result.stderr
    assert "standard: 9 steps, valid." in result.stdout
    assert (
        "warning: cadence standard: steps recorded for its active accounts are not in "
        "schedules: overdue-3d (1 account). A step is known by its key: one renamed is sent "
        "again to the accounts that had it; give it back its key (see docs/cadences.md)\n"
    ) in result.stderr
    assert "pre-due" not in result.stderr


def test_preview_stops_a_template_that_would_render_for_ever(
    workdir: Path, env: dict[str, str]
) -> None:
    sms = workdir / "templates/sms/overdue.firm.j2"
    endless = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    sms.write_text(endless + sms.read_text(encoding="utf-8"), encoding="utf-8")
    result = outreach(
        "templates", "preview", "overdue", "-c", "sms", "-t", "firm", env=env, cwd=workdir
    )
    assert result.returncode == 2
    assert "lint: sms/overdue.firm.j2:1: RENDER_LIMIT" in result.stderr
    assert "took more than 100000 steps" in result.stderr
    assert "does not render" in result.stderr


def test_preview_shows_lints_findings_beside_what_renders(
    workdir: Path, env: dict[str, str]
) -> None:
    sms = workdir / "templates/sms/overdue.firm.j2"
    sms.write_text(sms.read_text(encoding="utf-8") + " " + "x" * 700, encoding="utf-8")
    result = outreach(
        "templates", "preview", "overdue", "-c", "sms", "-t", "firm", env=env, cwd=workdir
    )
    assert result.returncode == 0, result.stderr
    assert "lint: sms/overdue.firm.j2" in result.stderr and "segments" in result.stderr
    assert "x" * 700 in result.stdout


def test_sync_where_this_system_user_has_no_name(
    workdir: Path, env: dict[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A container's numeric uid: no USER or LOGNAME, and no entry in the password database.
    def no_name() -> str:
        raise KeyError("getpwuid(): uid not found: 54321")

    monkeypatch.setattr(getpass, "getuser", no_name)
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(app, ["templates", "sync"], env=env)
    assert result.exit_code == 0, result.output
    with engine.connect() as connection:
        authors = connection.execute(select(table_of(TemplateVersion).c.author)).scalars()
        assert set(authors) == {"unknown"}
