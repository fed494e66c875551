"""The command line as an operator uses it: a real ``outreach`` process per command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert, text

from outreach import store
from outreach.compliance_store import attempts, inbox_messages
from outreach.db import head_revision
from tests.conftest import REPO
from tests.test_import_accounts import row, write_csv


def outreach(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outreach", *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_import_reports_rows_and_exits_1_on_rejects(env: dict[str, str], tmp_path: Path) -> None:
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    path = write_csv(tmp_path / "a.csv", [row("A-1"), row("B-1", balance="oops"), row("A-2")])
    result = outreach(
        "accounts", "import", str(path), "--rejects", "bad.csv", env=env, cwd=tmp_path
    )
    assert result.returncode == 1, result.stderr
    assert "row 3: balance: 'oops' is not an amount" in result.stdout + result.stderr
    assert "3 rows read: 2 created, 0 updated, 0 unchanged, 1 rejected." in result.stdout
    assert (tmp_path / "bad.csv").exists()
    again = outreach("accounts", "import", str(path), "--quiet", env=env, cwd=tmp_path)
    assert "0 created, 0 updated, 2 unchanged, 1 rejected." in again.stdout
    shown = outreach("accounts", "show", "A-1", env=env, cwd=tmp_path)
    assert shown.returncode == 0
    assert "120.50 USD" in shown.stdout
    assert "+16175550101" in shown.stdout


def test_unreadable_file_is_refused_whole_without_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    outreach("init", env=env, cwd=tmp_path)
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        "reference,name,balance,due_date\nR-1,José,1.00,2026-01-01\n".encode("latin-1")
    )
    result = outreach("accounts", "import", str(path), env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "line 2 is not UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rejects_file_naming_the_input_is_refused_without_traceback(
    env: dict[str, str], tmp_path: Path
) -> None:
    outreach("init", env=env, cwd=tmp_path)
    path = write_csv(tmp_path / "a.csv", [row("A-1"), row("B-1", balance="oops")])
    written = path.read_bytes()
    (tmp_path / "p.csv").write_text("reference,amount\nA-1,oops\n", encoding="utf-8")
    for command, name in (("accounts", "a.csv"), ("payments", "p.csv")):
        before = (tmp_path / name).read_bytes()
        result = outreach(command, "import", name, "--rejects", name, env=env, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"--rejects {name}: it is the file being imported" in result.stderr
        assert "Traceback" not in result.stderr
        assert (tmp_path / name).read_bytes() == before
    assert path.read_bytes() == written


def test_commands_refuse_an_uninitialized_database(env: dict[str, str], tmp_path: Path) -> None:
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = outreach("accounts", "show", "X", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "run 'outreach init'" in result.stderr
    assert "there is no database at" in result.stderr
    assert not (tmp_path / "fresh.db").exists()  # nothing left behind to be mistaken for one


def test_a_database_migrated_by_a_newer_outreach_is_named_as_such(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    try:
        newer = f"at schema 0099, newer than this outreach (which knows up to {head_revision()})"
        for command in (["accounts", "show", "X"], ["init"]):
            result = outreach(*command, env=env, cwd=tmp_path)
            assert result.returncode == 2, result.stderr[-300:]
            assert newer in result.stderr and "upgrade outreach" in result.stderr
            assert "run 'outreach init'" not in result.stderr
            assert "Traceback" not in result.stderr
    finally:  # PostgreSQL's schema is shared by the tests that follow
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = :head"), {"head": head_revision()}
            )


def test_payments_from_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    outreach("init", env=env, cwd=tmp_path)
    outreach(
        "accounts",
        "import",
        str(write_csv(tmp_path / "a.csv", [row("A-1")])),
        env=env,
        cwd=tmp_path,
    )
    paid = outreach(
        "payments", "record", "A-1", "120.50", "--payment-id", "T1", env=env, cwd=tmp_path
    )
    assert "balance 0.00 USD, status paid" in paid.stdout
    (tmp_path / "p.csv").write_text(
        "reference,amount,payment_id\nA-1,120.50,T1\n", encoding="utf-8"
    )
    again = outreach("payments", "import", "p.csv", env=env, cwd=tmp_path)
    assert "0 payments recorded, 1 already recorded" in again.stdout


def test_a_payments_import_names_what_it_ignores_and_refuses(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The columns it did not read are named; an instalment equal to last month's row
    is a rejected row (exit 1), not dropped; a date under another name refuses the file."""
    outreach("init", env=env, cwd=tmp_path)
    outreach("accounts", "import", str(write_csv(tmp_path / "a.csv", [row("A-1")])),
             env=env, cwd=tmp_path)  # fmt: skip
    for month in ("11", "12"):
        (tmp_path / f"payments-{month}.csv").write_text(
            "reference,amount,Note\nA-1,40.00,instalment\n", encoding="utf-8"
        )
    first = outreach("payments", "import", "payments-11.csv", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Ignored unknown columns: note." in first.stdout
    second = outreach("payments", "import", "payments-12.csv", env=env, cwd=tmp_path)
    assert second.returncode == 1, second.stderr
    assert "row 2: payment_id: none given" in second.stderr
    assert "was recorded from payments-11.csv" in second.stderr
    assert "0 payments recorded, 0 already recorded, 1 rejected" in second.stdout
    (tmp_path / "dated.csv").write_text(
        "reference,amount,Payment Date\nA-1,40.00,2026-10-01\n", encoding="utf-8"
    )
    dated = outreach("payments", "import", "dated.csv", env=env, cwd=tmp_path)
    assert dated.returncode == 2, dated.stderr
    assert "column payment_date looks like the day of the payment" in dated.stderr
    assert "Traceback" not in dated.stderr
    shown = outreach("accounts", "show", "A-1", env=env, cwd=tmp_path)
    assert "80.50 USD" in shown.stdout


def test_a_months_rejects_file_imported_after_anothers_refuses_its_equal_instalment(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Both months' bank files reject B-1,40.00 before its account is imported: December's
    rejects file, imported after November's, exits 1 naming November's file instead of
    counting its instalment already recorded (exit 0, the payment lost)."""
    outreach("init", env=env, cwd=tmp_path)
    for month in ("11", "12"):
        (tmp_path / f"payments-{month}.csv").write_text(
            "reference,amount,paid_by\nB-1,40.00,card\n", encoding="utf-8"
        )
        result = outreach("payments", "import", f"payments-{month}.csv", "--rejects",
                          f"rejects-{month}.csv", env=env, cwd=tmp_path)  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert "Ignored unknown columns: paid_by." in result.stdout
    outreach("accounts", "import", str(write_csv(tmp_path / "b.csv", [row("B-1")])),
             env=env, cwd=tmp_path)  # fmt: skip
    first = outreach("payments", "import", "rejects-11.csv", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    second = outreach("payments", "import", "rejects-12.csv", env=env, cwd=tmp_path)
    assert second.returncode == 1, second.stderr
    assert "the row this one corrects, of payments-12.csv" in second.stderr
    assert "recorded from payments-11.csv" in second.stderr
    assert "0 payments recorded, 0 already recorded, 1 rejected" in second.stdout
    shown = outreach("accounts", "show", "B-1", env=env, cwd=tmp_path)
    assert "80.50 USD" in shown.stdout
    assert "rejects-11.csv (row_key of payments-11.csv)" in shown.stdout


def test_config_masks_secrets_and_names_problems(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SENDGRID_"))}
    env.update(
        ENVIRONMENT="production",
        SECRET_KEY="change-me",
        SMS_PROVIDER="twilio_sms",
        TWILIO_AUTH_TOKEN="tok-very-secret-123",
        DATABASE_URL="postgresql://app:db-pass-456@db.internal/outreach",
        COLUMNS="200",
    )
    result = outreach("config", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "tok-very-secret-123" not in result.stdout + result.stderr
    assert "db-pass-456" not in result.stdout + result.stderr
    assert "SECRET_KEY: holds a placeholder value in production" in result.stdout
    assert (
        "TWILIO_ACCOUNT_SID: a Twilio provider is selected but its credentials are missing"
        in result.stdout
    )


def test_invalid_setting_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "WEB_PORT": "not-a-port", "COLUMNS": "200"}
    result = outreach("config", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "WEB_PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("mysql://u:hunter2@h/db", "unsupported database URL scheme"),
        ("postgresql+psycopg2://u:hunter2@h/db", "unsupported database URL scheme"),
        ("postgresql+psycopg://u:hunter2@h:abc/db", "it cannot be read as a database URL"),
        ("postgresql+psycopg://u:hunter2@h:5432:1/db", "it cannot be read as a database URL"),
        # The password "hunter2@pw" with its "@" unencoded.
        ("postgresql+psycopg://u:hunter2@pw@h:5432/db", "it has more than one '@'"),
    ],
)
def test_a_database_url_outreach_cannot_use_is_one_clear_error(
    tmp_path: Path, url: str, problem: str
) -> None:
    env = {**os.environ, "DATABASE_URL": url, "COLUMNS": "200"}
    checked = outreach("config", env=env, cwd=tmp_path)
    assert checked.returncode == 1 and problem in checked.stdout + checked.stderr
    for command in (["init"], ["run", "--once"], ["accounts", "show", "A-1"]):
        result = outreach(*command, env=env, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"DATABASE_URL: {problem}" in result.stderr
        assert "Traceback" not in result.stderr and "hunter2" not in result.stderr


def test_tables_written_to_a_pipe_are_not_cut_to_80_columns(tmp_path: Path) -> None:
    url = "postgresql+psycopg://outreach_service:hunter2@db.internal.example.com:5432/outreach"
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | {"DATABASE_URL": url}
    shown = outreach("config", env=env, cwd=tmp_path).stdout
    assert (
        "postgresql+psycopg://outreach_service:***@db.internal.example.com:5432/outreach" in shown
    )
    assert "…" not in shown


def test_placeholder_secrets_stop_commands_in_production(
    env: dict[str, str], tmp_path: Path
) -> None:
    env.update(ENVIRONMENT="production", SECRET_KEY="change-me")
    result = outreach("init", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "SECRET_KEY still hold placeholder values in production" in result.stderr


def test_missing_input_and_rejects_folder_are_clear_errors(
    env: dict[str, str], tmp_path: Path
) -> None:
    outreach("init", env=env, cwd=tmp_path)
    missing = outreach("accounts", "import", "nope.csv", env=env, cwd=tmp_path)
    assert (missing.returncode, "Traceback" in missing.stderr) == (2, False)
    assert "nope.csv: no such file" in missing.stderr
    path = write_csv(tmp_path / "a.csv", [row("A-1")])
    bad_dir = outreach(
        "accounts", "import", str(path), "--rejects", "no/such/dir/r.csv", env=env, cwd=tmp_path
    )
    assert bad_dir.returncode == 2
    assert "cannot write rejects to no/such/dir/r.csv" in bad_dir.stderr


def test_account_show_lists_messages_replies_and_compliance_events(
    env: dict[str, str], tmp_path: Path, engine: Engine
) -> None:
    outreach("init", env=env, cwd=tmp_path)
    outreach("accounts", "import", str(write_csv(tmp_path / "a.csv", [row("A-1")])),
             env=env, cwd=tmp_path)  # fmt: skip
    at = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    with engine.begin() as connection:
        account_id = store.account_by_reference(connection, "A-1").id
        connection.execute(insert(attempts).values(
            account_id=account_id, idempotency_key="k", step_key="overdue-3d", channel="sms",
            to_address="+16175550101", template_name="overdue", tone="friendly", locale="en",
            body="Hi", status="delivered", provider_message_id="SM123", tries=1, automated=True,
            created_at=at, updated_at=at, sent_at=at))  # fmt: skip
        connection.execute(insert(inbox_messages).values(
            account_id=account_id, channel="sms", from_address="+16175550101",
            to_address="+16175550100", body="I paid yesterday", direction="inbound",
            intent="paid", status="open", received_at=at))  # fmt: skip
        connection.execute(insert(store.compliance_events).values(
            account_id=account_id, kind="opt_out", channel="sms", address="+16175550101",
            occurred_at=at, source="twilio_sms inbound"))  # fmt: skip
    shown = outreach("accounts", "show", "A-1", env=env, cwd=tmp_path).stdout
    assert "overdue-3d" in shown and "delivered" in shown and "SM123" in shown
    assert "I paid yesterday" in shown and "paid" in shown
    assert "opt_out" in shown and "twilio_sms inbound" in shown


def test_account_show_prints_the_accounts_data_as_it_is(
    env: dict[str, str], tmp_path: Path
) -> None:
    """What an import or a debtor wrote is text: "[/]" in a name does not stop the command,
    and "[red]" is not taken for a colour and dropped."""
    outreach("init", env=env, cwd=tmp_path)
    path = write_csv(
        tmp_path / "a.csv",
        [row("A-1", name="Acme [/] Ltd"), row("A-2", name="Ann [red]Smith")],
    )
    outreach("accounts", "import", str(path), env=env, cwd=tmp_path)
    first = outreach("accounts", "show", "A-1", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Acme [/] Ltd" in first.stdout
    second = outreach("accounts", "show", "A-2", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Ann [red]Smith" in second.stdout


def test_an_error_quoting_brackets_is_said_as_it_is(env: dict[str, str], tmp_path: Path) -> None:
    """An error names what was given: the reference "X[/]" is said, not a rich traceback."""
    outreach("init", env=env, cwd=tmp_path)
    result = outreach("accounts", "show", "X[/]", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "X[/]" in result.stderr and "Traceback" not in result.stderr


def test_demo_data_is_refused_outside_development(env: dict[str, str], tmp_path: Path) -> None:
    env.update(ENVIRONMENT="production", SECRET_KEY="Zx9-a-real-secret-value-0123456789")
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    added = subprocess.run(
        [sys.executable, "-m", "outreach", "users", "add", "admin", "--role", "viewer",
         "--password-stdin"],
        input="their-own-password-1\n", env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    for command in (["init", "--demo"], ["demo-data", "--count", "2"]):
        refused = outreach(*command, env=env, cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout
        assert "for development only: ENVIRONMENT is production" in refused.stderr
        assert "password" not in refused.stdout
    listed = outreach("users", "list", env=env, cwd=tmp_path).stdout
    rows = [[cell.strip() for cell in line.split("│")[1:5]] for line in listed.splitlines()]
    assert [row for row in rows if row] == [["admin", "admin", "viewer", "yes"]]  # as added
    shown = outreach("accounts", "show", "DEMO-00001", env=env, cwd=tmp_path)
    assert "no account with reference 'DEMO-00001'" in shown.stderr


def test_init_demo_leaves_an_existing_user_as_it_is(env: dict[str, str], tmp_path: Path) -> None:
    env.update(ENVIRONMENT="development", TEMPLATES_DIR=str(tmp_path / "none"))
    first = outreach("init", "--demo", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Web UI users admin, marketer, agent; password for this demo: " in first.stdout
    again = outreach("init", "--demo", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "password for this demo" not in again.stdout
    assert "Web UI users admin, marketer, agent exist already: left as they are" in again.stdout


def test_a_configuration_file_not_in_utf8_is_one_line_naming_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert outreach("init", env=env, cwd=tmp_path).returncode == 0
    for folder in ("templates", "channels"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    latin1 = "# Café\n".encode("latin-1")  # as an editor on an older system saves it
    bad = tmp_path / "bad"
    shutil.copytree(REPO / "channels", bad / "channels")
    (bad / "channels/email.yaml").write_bytes(b"from_name: x\n" + latin1)
    shutil.copytree(REPO / "templates", bad / "templates")
    (bad / "templates/company.yaml").write_bytes(latin1)
    (bad / "rules.yaml").write_bytes(latin1)
    template = tmp_path / "templates/sms/overdue.firm.j2"
    template.write_bytes(template.read_bytes() + b"\n" + latin1)
    line = template.read_bytes().count(b"\n")
    (bad / "a-file").write_text("x")
    said = "not UTF-8 (line {}): re-save it as UTF-8"
    for setting, value, command, expected in [
        ("CHANNELS_DIR", "channels", ["run", "--once"], f"email.yaml: {said.format(2)}"),
        ("TEMPLATES_DIR", "templates", ["run", "--once"], f"company.yaml: {said.format(1)}"),
        ("COMPLIANCE_RULES_FILE", "rules.yaml", ["run", "--once"], f"rules.yaml: {said.format(1)}"),
        ("TEMPLATES_DIR", "a-file", ["run", "--once"], "a-file is a file, not the templates"),
        (None, None, ["templates", "lint"], f"overdue.firm.j2: {said.format(line)}"),
        (None, None, ["templates", "sync"], f"overdue.firm.j2: {said.format(line)}"),
    ]:
        given = env | ({setting: str(bad / value)} if setting and value else {})
        result = outreach(*command, env=given, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
    listed = outreach("config", env=env | {"CHANNELS_DIR": str(bad / "channels")}, cwd=tmp_path)
    assert listed.returncode == 1, listed.stderr
    assert f"error CHANNELS_DIR: {bad}/channels/email.yaml: {said.format(2)}" in listed.stdout


def test_an_env_file_not_in_utf8_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes("LOG_LEVEL=INFO\n# Café\n".encode("latin-1"))
    result = outreach("config", env={**os.environ, "COLUMNS": "200"}, cwd=tmp_path)
    assert result.returncode == 2
    assert ".env: not UTF-8 (line 2): re-save it as UTF-8" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_sqlite_database_in_the_home_folder_is_opened_there(tmp_path: Path) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "DATABASE_URL": "sqlite:///~/data/t.db"}
    created = outreach("init", env=env, cwd=work)
    assert created.returncode == 0, created.stderr
    assert (home / "data/t.db").is_file()
    assert list(work.iterdir()) == []  # no ./~ folder
    again = outreach("init", env=env, cwd=work)
    assert f"Database sqlite:///{home}/data/t.db is up to date" in again.stdout


def test_instants_outside_the_years_imports_accept_are_refused(
    env: dict[str, str], tmp_path: Path
) -> None:
    assert outreach("init", env=env | {"ENVIRONMENT": "development"}, cwd=tmp_path).returncode == 0
    for at in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:00-05:00"):
        for command in (
            ["compliance", "explain", "--account", "A-1", "--at", at],
            ["compliance", "record", "--account", "A-1", "--kind", "dispute", "--at", at],
            ["run", "--once", "--start", at],
        ):
            option = command[-2]
            result = outreach(*command, env=env | {"ENVIRONMENT": "development"}, cwd=tmp_path)
            assert result.returncode == 2, result.stderr
            assert f"{option} '{at}' is out of range (years 1900 to 2199)" in result.stderr
            assert "Traceback" not in result.stderr
