from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from outreach.channels import (
    EmailChannel,
    SmsChannel,
    VoiceChannel,
    channel_problems,
    load_channel,
)
from outreach.errors import ConfigError
from tests.conftest import REPO


def test_the_shipped_channel_files_are_valid() -> None:
    assert channel_problems(REPO / "channels") == []
    assert isinstance(load_channel(REPO / "channels", "sms"), SmsChannel)
    email = load_channel(REPO / "channels", "email")
    assert isinstance(email, EmailChannel) and "{attempt_id}" in (email.reply_to or "")
    voice = load_channel(REPO / "channels", "voice")
    assert isinstance(voice, VoiceChannel) and voice.twiml_mode == "url"


def test_missing_files_mean_defaults(tmp_path: Path) -> None:
    assert channel_problems(tmp_path) == []
    sms = load_channel(tmp_path, "sms")
    assert isinstance(sms, SmsChannel) and sms.rate_limits.default.per_second == 1


@pytest.mark.parametrize(
    ("channel", "text", "named"),
    [
        ("sms", "rate_limits:\n  default:\n    per_second: 0\n", "rate_limits.default.per_second"),
        ("sms", "rate_limits:\n  default: {per_second: 1, burts: 2}\n", "burts"),
        ("voice", "twiml_mode: stream\n", "twiml_mode"),
        ("email", "reply_to: billing\n", "reply_to"),
        ("email", "outbox:\n  reply_rate: 2\n", "outbox.reply_rate"),
        ("voice", "ring_timeout: 1\n", "ring_timeout"),
    ],
)
def test_a_mistake_names_the_file_and_the_field(
    tmp_path: Path, channel: str, text: str, named: str
) -> None:
    (tmp_path / f"{channel}.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_channel(tmp_path, channel)
    assert f"{channel}.yaml" in str(raised.value) and named in str(raised.value)
    (problem,) = channel_problems(tmp_path)
    assert named in problem


@pytest.mark.parametrize("field", ["reply_to", "unsubscribe_mailto"])
@pytest.mark.parametrize(
    "value", ["billing@", "billing@@example.com", "Billing Team billing@example.com"]
)
def test_an_email_address_setting_must_be_one_address(
    tmp_path: Path, field: str, value: str
) -> None:
    # SendGrid would refuse every email for it: refused when the file is loaded.
    (tmp_path / "email.yaml").write_text(f"{field}: {value}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"email.yaml: {field}: .*not a valid email address"):
        load_channel(tmp_path, "email")


def test_a_reply_to_may_name_the_attempt_and_is_kept_as_written(tmp_path: Path) -> None:
    # Guards the check above against refusing the shipped {attempt_id} form.
    (tmp_path / "email.yaml").write_text(
        "reply_to: Billing+{attempt_id}@Reply.Example.com\n", encoding="utf-8"
    )
    email = load_channel(tmp_path, "email")
    assert isinstance(email, EmailChannel)
    assert email.reply_to == "Billing+{attempt_id}@Reply.Example.com"


def test_yaml_that_is_not_a_mapping(tmp_path: Path) -> None:
    (tmp_path / "voice.yaml").write_text("- just\n- a list\n", encoding="utf-8")
    assert channel_problems(tmp_path) == [
        f"{tmp_path / 'voice.yaml'}: expected a mapping of settings"
    ]


def test_outreach_config_reports_channel_mistakes(tmp_path: Path) -> None:
    channels = tmp_path / "channels"
    channels.mkdir()
    (channels / "voice.yaml").write_text("twiml_mode: stream\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SENDGRID_"))}
    env.update(COLUMNS="250", SCHEDULES_DIR=str(REPO / "schedules"))
    result = subprocess.run(
        [sys.executable, "-m", "outreach", "config"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "CHANNELS_DIR: channels/voice.yaml: twiml_mode:" in result.stdout
