from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from outreach.config import Settings, is_placeholder, mask_url
from outreach.errors import ConfigError
from outreach.rendering.context import load_company
from tests.conftest import REPO


def settings(**values: object) -> Settings:
    # _env_file=None: a developer's own .env must not leak into these tests.
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_safe_defaults_need_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    current = settings()
    assert current.database_url == "sqlite:///./outreach.db"
    assert current.environment == "development"
    assert current.effective_providers() == {"sms": "outbox", "voice": "outbox", "email": "outbox"}
    assert all(problem.severity == "warning" for problem in current.problems())


def test_reads_environment_and_env_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DEFAULT_REGION=gb\nTWILIO_AUTH_TOKEN=from-file\n", encoding="utf-8")
    monkeypatch.setenv("DEFAULT_LOCALE", "es_US")
    current = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert current.default_region == "GB"
    assert current.default_locale == "es_US"
    assert current.twilio_auth_token is not None
    assert current.twilio_auth_token.get_secret_value() == "from-file"
    assert "from-file" not in repr(current)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@db/outreach", "postgresql+psycopg://u:p@db/outreach"),
        ("postgres://u@db/outreach", "postgresql+psycopg://u@db/outreach"),
        ("postgresql+psycopg://u@db/x", "postgresql+psycopg://u@db/x"),
        ("sqlite:///./x.db", "sqlite:///./x.db"),
    ],
)
def test_postgres_urls_use_psycopg3(given: str, expected: str) -> None:
    assert settings(database_url=given).database_url == expected


def test_auto_providers_follow_credentials() -> None:
    current = settings(
        twilio_account_sid="AC123",
        twilio_auth_token=SecretStr("a-real-token-value"),
        twilio_from_number="+16175550100",
        sendgrid_api_key=SecretStr("SG.real-key"),
    )
    assert current.effective_providers() == {
        "sms": "twilio_sms",
        "voice": "twilio_voice",
        "email": "sendgrid_email",
    }


def test_provider_without_credentials_is_an_error_with_remedy() -> None:
    problems = settings(sms_provider="twilio_sms").problems()
    error = next(p for p in problems if p.setting == "TWILIO_ACCOUNT_SID")
    assert error.severity == "error"
    assert "SMS_PROVIDER" in error.remedy
    sendgrid = settings(email_provider="sendgrid_email").problems()
    assert any(p.setting == "SENDGRID_API_KEY" and p.severity == "error" for p in sendgrid)


def test_placeholder_secret_refused_outside_development() -> None:
    development = settings(secret_key=SecretStr("change-me")).problems()
    assert [p.severity for p in development if p.setting == "SECRET_KEY"] == ["warning"]
    production = settings(environment="production", secret_key=SecretStr("change-me")).problems()
    assert [p.severity for p in production if p.setting == "SECRET_KEY"] == ["error"]
    real = settings(environment="production", secret_key=SecretStr("k3Y-9f8a7b6c5d4e3f2a1b0c"))
    assert not [p for p in real.problems() if p.setting == "SECRET_KEY"]


def test_previous_secret_keys_are_read_in_order_and_never_printed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SECRET_KEY", "k3Y-current-9f8a7b6c5d4e")
    monkeypatch.setenv(
        "SECRET_KEY_PREVIOUS", " k3Y-before-1a2b3c ,,k3Y-current-9f8a7b6c5d4e, k3Y-older-4d5e"
    )
    current = settings()
    # The current key and blanks are no previous keys.
    assert current.previous_secret_keys() == ("k3Y-before-1a2b3c", "k3Y-older-4d5e")
    assert "k3Y-before" not in repr(current) and "k3Y-older" not in str(current)
    assert settings(secret_key_previous=None).previous_secret_keys() == ()


def test_a_placeholder_among_the_previous_keys_is_refused_in_production() -> None:
    """Whoever knows it could sign an unsubscribe link for any address."""
    real = SecretStr("k3Y-9f8a7b6c5d4e3f2a1b0c")
    rotated = settings(
        environment="production",
        secret_key=real,
        secret_key_previous=SecretStr("k3Y-before-1a2b3c,change-me"),
    )
    previous = [p for p in rotated.problems() if p.setting == "SECRET_KEY_PREVIOUS"]
    assert [p.severity for p in previous] == ["error"]
    assert "change-me" not in previous[0].message + previous[0].remedy
    fine = settings(
        environment="production", secret_key=real, secret_key_previous=SecretStr("k3Y-before-1a")
    )
    assert not [p for p in fine.problems() if p.setting == "SECRET_KEY_PREVIOUS"]


@pytest.mark.parametrize("value", ["", "change-me", "CHANGEME", "your-api-key", "<token>"])
def test_placeholders_are_recognised(value: str) -> None:
    assert is_placeholder(SecretStr(value))


def test_unreachable_public_url_with_a_real_provider() -> None:
    current = settings(
        environment="production",
        secret_key=SecretStr("k3Y-9f8a7b6c5d4e3f2a1b0c"),
        sendgrid_api_key=SecretStr("SG.real-key"),
        sendgrid_from_email="billing@example.com",
        sendgrid_webhook_public_key="MFkw...",
    )
    assert [p.setting for p in current.problems()] == ["PUBLIC_BASE_URL"]


def test_mask_url_hides_password() -> None:
    masked = mask_url("postgresql+psycopg://app:s3cret@db:5432/outreach")
    assert "s3cret" not in masked
    assert "app:***@db:5432/outreach" in masked


def test_mask_url_hides_all_of_a_password_whose_at_sign_is_not_encoded() -> None:
    masked = mask_url("postgresql+psycopg://outreach:p@ssw0rd@db.example.internal:5432/x")
    assert masked == "postgresql+psycopg://outreach:***@db.example.internal:5432/x"


def test_mask_url_hides_passwords_in_the_query() -> None:
    masked = mask_url("postgresql+psycopg://u@db/x?password=hunter2&sslmode=require")
    assert "hunter2" not in masked
    assert "sslmode=require" in masked


def test_defaults_that_would_fail_every_row_are_errors(tmp_path: Path) -> None:
    current = settings(
        default_currency="usd", default_region="USA", default_cadence="nope",
        default_locale="xx_YY", schedules_dir=tmp_path,
    )  # fmt: skip
    assert current.default_currency == "USD"
    flagged = {p.setting for p in current.problems() if p.severity == "error"}
    # (an empty schedules folder is one more)
    assert flagged == {"DEFAULT_REGION", "DEFAULT_CADENCE", "DEFAULT_LOCALE", "SCHEDULES_DIR"}


def test_folders_that_are_not_the_projects_are_configuration_problems(tmp_path: Path) -> None:
    wrong = settings(templates_dir=tmp_path / "t", schedules_dir=tmp_path / "s",
                     channels_dir=tmp_path / "c")  # fmt: skip
    found = {p.setting: p for p in wrong.problems()}
    assert found["TEMPLATES_DIR"].severity == "error"
    assert "company.yaml is missing" in found["TEMPLATES_DIR"].message
    assert found["SCHEDULES_DIR"].severity == "error"
    assert "no cadence files" in found["SCHEDULES_DIR"].message
    assert found["CHANNELS_DIR"].severity == "warning"
    assert "every channel runs on its defaults" in found["CHANNELS_DIR"].message
    assert not {"TEMPLATES_DIR", "SCHEDULES_DIR", "CHANNELS_DIR"} & {
        p.setting for p in settings().problems()
    }
    # A file where a folder belongs is a problem listed, not a traceback.
    (tmp_path / "a-file").write_text("x")
    as_file = settings(templates_dir=tmp_path / "a-file", schedules_dir=tmp_path / "a-file")
    found = {p.setting: p for p in as_file.problems()}
    assert found["TEMPLATES_DIR"].severity == "error"
    assert "a-file is a file, not the templates folder" in found["TEMPLATES_DIR"].message
    assert found["SCHEDULES_DIR"].severity == "error"


def test_files_not_in_utf8_are_configuration_problems_naming_the_file_and_line(
    tmp_path: Path,
) -> None:
    for folder in ("templates", "channels"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    # Latin-1, as an editor on an older system saves "Café".
    latin1 = "name: Café\n".encode("latin-1")
    (tmp_path / "channels/email.yaml").write_bytes(b"# email\n" + latin1)
    company = tmp_path / "templates/company.yaml"
    company.write_bytes(company.read_bytes() + latin1)
    lines = company.read_bytes().count(b"\n")
    rules = tmp_path / "rules.yaml"
    rules.write_bytes(latin1)
    found = {
        p.setting: p
        for p in settings(
            templates_dir=tmp_path / "templates", channels_dir=tmp_path / "channels",
            compliance_rules_file=rules,
        ).problems()
    }  # fmt: skip
    said = "not UTF-8 (line {}): re-save it as UTF-8"
    assert f"channels/email.yaml: {said.format(2)}" in found["CHANNELS_DIR"].message
    assert f"company.yaml: {said.format(lines)}" in found["TEMPLATES_DIR"].message
    assert f"rules.yaml: {said.format(1)}" in found["COMPLIANCE_RULES_FILE"].message
    assert {found[s].severity for s in ("CHANNELS_DIR", "TEMPLATES_DIR")} == {"error"}


def test_a_channel_file_that_cannot_be_read_is_a_configuration_problem(tmp_path: Path) -> None:
    (tmp_path / "sms.yaml").mkdir()  # a folder in the file's place
    problems = settings(channels_dir=tmp_path).problems()
    (channel,) = [p for p in problems if p.setting == "CHANNELS_DIR"]
    assert "sms.yaml: cannot be read (Is a directory)" in channel.message


@pytest.mark.parametrize(
    ("public", "port", "suggested"),
    [
        ("http://127.0.0.1:8000", 8100, "http://127.0.0.1:8100"),
        ("http://localhost:8000/", 8100, "http://localhost:8100/"),
        ("http://[::1]", 8100, "http://[::1]:8100"),
        ("http://127.0.0.1:8000", 8000, None),
        ("http://localhost", 80, None),
        ("https://collect.example.com", 8100, None),  # a proxy's address, its own port
    ],
)
def test_a_local_public_url_on_another_port_than_the_web_apps_is_warned_of(
    public: str, port: int, suggested: str | None
) -> None:
    warning = settings(public_base_url=public).public_url_elsewhere(port)
    if suggested is None:
        assert warning is None
    else:
        assert warning is not None
        assert f"PUBLIC_BASE_URL is {public} but the web app listens on port {port}" in warning
        assert warning.endswith(f"Set PUBLIC_BASE_URL={suggested}")


def test_a_home_folder_in_a_sqlite_url_is_where_the_database_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert settings(database_url="sqlite:///~/t.db").database_url == f"sqlite:///{tmp_path}/t.db"
    assert settings(database_url="sqlite:///./~x.db").database_url == "sqlite:///./~x.db"


def test_partial_twilio_credentials_and_voice_without_a_number() -> None:
    partial = settings(twilio_auth_token=SecretStr("a-real-token-value"))
    assert any(
        p.setting == "TWILIO_ACCOUNT_SID" and p.severity == "warning" for p in partial.problems()
    )
    voice = settings(
        twilio_account_sid="AC1", twilio_auth_token=SecretStr("a-real-token-value"),
        twilio_messaging_service_sid="MG1",
    )  # fmt: skip
    assert any(p.setting == "TWILIO_FROM_NUMBER" for p in voice.problems())


def test_channel_file_mistakes_are_configuration_problems(tmp_path: Path) -> None:
    (tmp_path / "sms.yaml").write_text("rate_limits:\n  default:\n    per_second: -1\n")
    problems = settings(channels_dir=tmp_path).problems()
    (channel,) = [p for p in problems if p.setting == "CHANNELS_DIR"]
    assert channel.severity == "error"
    assert "sms.yaml" in channel.message and "rate_limits.default.per_second" in channel.message


def test_twilio_with_only_an_api_key_cannot_verify_webhooks() -> None:
    keyed = settings(
        twilio_account_sid="AC1", twilio_api_key_sid="SK1",
        twilio_api_key_secret=SecretStr("a-real-key-secret"), twilio_from_number="+16175550100",
    )  # fmt: skip
    assert any(p.setting == "TWILIO_AUTH_TOKEN" and p.severity == "error" for p in keyed.problems())


def test_printed_settings_mask_the_database_password() -> None:
    settings = Settings(_env_file=None, database_url="postgresql://app:hunter2@db:5432/outreach")
    for printed in (repr(settings), str(settings)):
        assert "hunter2" not in printed
        assert "app:***@db:5432/outreach" in printed
    assert settings.database_url.endswith("app:hunter2@db:5432/outreach")  # still usable


@pytest.mark.parametrize(
    "variable", ["TWILIO_API_BASE_URL", "SENDGRID_API_BASE_URL", "PUBLIC_BASE_URL"]
)
@pytest.mark.parametrize("value", ["api.twilio.com", "https://", "ftp://files.example.com"])
def test_a_web_address_setting_without_scheme_or_host_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValueError, match="is not a web address such as https://"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv(variable, " https://api.example.com ")
    assert getattr(Settings(_env_file=None), variable.lower()) == "https://api.example.com"  # type: ignore[call-arg]


@pytest.mark.parametrize("value", ["https://api..twilio.com", f"https://{'a' * 64}.example.com"])
def test_a_web_address_whose_host_cannot_be_looked_up_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TWILIO_API_BASE_URL", value)
    with pytest.raises(ValueError, match="its host name has an empty or too long part"):
        Settings(_env_file=None)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "value", ["billing@", "billing@@example.com", "Billing Team billing@example.com"]
)
def test_a_sender_address_that_is_not_one_address_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SENDGRID_FROM_EMAIL", value)
    with pytest.raises(ValueError, match=r"(?s)sendgrid_from_email.*is not a valid email address"):
        Settings(_env_file=None)  # type: ignore[call-arg]
    monkeypatch.setenv("SENDGRID_FROM_EMAIL", " billing@example.com ")
    assert Settings(_env_file=None).sendgrid_from_email == "billing@example.com"  # type: ignore[call-arg]


def company_with(tmp_path: Path, language: str, **texts: str) -> Path:
    """A copy of the shipped templates folder whose company.yaml says ``texts`` in
    ``language``."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    raw = yaml.safe_load((templates / "company.yaml").read_text(encoding="utf-8"))
    raw["texts"][language].update(texts)
    (templates / "company.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return templates


@pytest.mark.parametrize(
    ("language", "texts", "said"),
    [
        ("en", {"disclosure": ""}, "texts.en.disclosure: Value error, must not be empty"),
        ("es", {"disclosure_short": "  "},
         "texts.es.disclosure_short: Value error, must not be empty"),
        ("en", {"opt_out": ""}, "texts.en.opt_out: Value error, must not be empty"),
        ("es", {"opt_out": "Responda ALTO para no recibir mas mensajes."},
         "texts.es.opt_out: Value error, must name STOP"),
        ("en", {"opt_out": "Text STOPPING to quit."},
         "texts.en.opt_out: Value error, must name STOP"),
    ],
)  # fmt: skip
def test_company_texts_every_message_is_made_of_are_checked_when_read(
    tmp_path: Path, language: str, texts: dict[str, str], said: str
) -> None:
    """A blank disclosure would send a debt collector's messages without it, an opt-out
    without STOP texts no one can stop: refused, naming the file and the field, where the
    daemon starts (its planner reads the file) and where `outreach config` looks."""
    templates = company_with(tmp_path, language, **texts)
    with pytest.raises(ConfigError) as refused:
        load_company(templates)
    assert str(refused.value).startswith(f"{templates / 'company.yaml'}: ")
    assert said in str(refused.value)
    found = {p.setting: p for p in settings(templates_dir=templates).problems()}
    assert found["TEMPLATES_DIR"].severity == "error"
    assert said in found["TEMPLATES_DIR"].message
    assert found["TEMPLATES_DIR"].remedy == f"correct {templates / 'company.yaml'}"
    # Other words with STOP in them, and the shipped texts, are accepted.
    load_company(company_with(tmp_path / "other", language, opt_out="Envie stop para salir."))
    load_company(REPO / "templates")


@pytest.mark.parametrize(
    ("language", "texts", "said"),
    [
        ("en", {"call_identity_check": "Hello, this is {company}. To continue, press 1."},
         "texts.en.call_identity_check: Value error, must have {name} and the key 2"),
        ("es", {"call_identity_check": "Esta llamada es para {name}. Marque uno o dos."},
         "texts.es.call_identity_check: Value error, must have the key 1 and the key 2"),
        ("en", {"call_identity_check": "For {name}: press 12, or 21."},
         "texts.en.call_identity_check: Value error, must have the key 1 and the key 2"),
        ("en", {"call_not_the_debtor": "Sorry, we will not call {name} here again."},
         "texts.en.call_not_the_debtor: Value error, must not have {name}"),
    ],
)  # fmt: skip
def test_a_call_identity_check_that_asks_for_no_one_is_refused_when_read(
    tmp_path: Path, language: str, texts: dict[str, str], said: str
) -> None:
    """A question naming no one lets whoever answers press 1 and hear the debt, one without
    both keys leaves no way to say who answered, and a goodbye naming the debtor tells a
    stranger whom we call: refused, naming the file and the field."""
    templates = company_with(tmp_path, language, **texts)
    with pytest.raises(ConfigError) as refused:
        load_company(templates)
    assert str(refused.value).startswith(f"{templates / 'company.yaml'}: ")
    assert said in str(refused.value)
    # The business may be named in both; the key may end a sentence.
    accepted = {
        "call_identity_check": "{company} calls {name}: press 1, else 2.",
        "call_not_the_debtor": "{company} is sorry to have bothered you.",
    }
    load_company(company_with(tmp_path / "other", language, **accepted))


@pytest.mark.parametrize("opt_out", ["回复STOP退订", "STOPと返信して配信停止", "Reply STOP."])
def test_stop_beside_words_written_without_spaces_is_named(tmp_path: Path, opt_out: str) -> None:
    """Chinese and Japanese write no space between words: STOP there is a word all the same
    (and lint's check of every text reads it the same way)."""
    load_company(company_with(tmp_path, "en", opt_out=opt_out))
