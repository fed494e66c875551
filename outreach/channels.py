"""Channel configuration from ``channels/*.yaml`` (no secrets: those come from settings).

Each file is validated on load against its model below; a mistake names the file, the
field and the reason. ``channel_problems`` lists every mistake for ``outreach config``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outreach.config_files import read_config_text
from outreach.errors import ConfigError
from outreach.importing.fields import email_address
from outreach.rendering.lint import DEFAULT_MAX_SMS_SEGMENTS, LintPolicy

CHANNELS = ("sms", "email", "voice")


class RateLimit(BaseModel):
    """Messages per second from one sender, with a burst that may go at once."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_second: float = Field(gt=0, le=10_000)
    burst: int = Field(default=1, ge=1, le=10_000)


class RateLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default: RateLimit
    senders: dict[str, RateLimit] = Field(default_factory=dict)  # by number or address

    def for_sender(self, sender: str) -> RateLimit:
        return self.senders.get(sender, self.default)


class OutboxSimulation(BaseModel):
    """What the outbox pretends a provider reports back, for the demo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delivery_delay_seconds: float = Field(default=5.0, ge=0, le=86_400)
    reply_rate: float = Field(default=0.1, ge=0, le=1)


class _ChannelFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    outbox: OutboxSimulation = OutboxSimulation()


class SmsReplies(BaseModel):
    """What outreach texts back to a keyword: one text, and nothing else in it (Reg F
    1006.14(h)(2)(i), CTIA)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opt_out_confirmation: str = Field(
        default="You are unsubscribed and will receive no more text messages from us.",
        min_length=1,
        max_length=320,
    )
    opt_in_confirmation: str = Field(
        default="You are subscribed to text messages again. Msg&data rates may apply. "
        "Reply STOP to opt out.",
        min_length=1,
        max_length=320,
    )
    help: str = Field(
        default="Reply STOP to opt out of text messages. Msg&data rates may apply.",
        min_length=1,
        max_length=320,
    )
    # Twilio answers STOP, START and HELP (and Advanced Opt-Out keywords) itself; a second
    # answer from us would be a second text after an opt-out. False: we answer them too.
    provider_answers_keywords: bool = True


class SmsChannel(_ChannelFile):
    max_segments: int = Field(default=DEFAULT_MAX_SMS_SEGMENTS, ge=1, le=10)
    replies: SmsReplies = SmsReplies()
    # A US long code (10DLC) sends about 1 message a second; toll-free 3; short codes 100.
    rate_limits: RateLimits = RateLimits(default=RateLimit(per_second=1, burst=1))


class EmailChannel(_ChannelFile):
    from_name: str | None = Field(default=None, max_length=100)
    # May hold {attempt_id} (e.g. billing+{attempt_id}@reply.example.com) so that a
    # reply names the message it answers.
    reply_to: str | None = Field(default=None, max_length=320)
    unsubscribe_mailto: str | None = Field(default=None, max_length=320)
    categories: list[str] = Field(default_factory=list, max_length=10)
    rate_limits: RateLimits = RateLimits(default=RateLimit(per_second=10, burst=20))

    @field_validator("reply_to", "unsubscribe_mailto")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        # Refused here rather than by SendGrid, which would refuse every email for it.
        # ``{attempt_id}`` stands for digits; the value is kept as written.
        if value is not None:
            email_address(value.replace("{attempt_id}", "1"))
        return value


class VoiceChannel(_ChannelFile):
    # url: Twilio fetches TwiML from us once it knows who answered (synchronous AMD), so a
    # person hears the full message and a machine only the voicemail. inline: the call
    # carries the voicemail TwiML itself and AMD reports asynchronously.
    twiml_mode: Literal["url", "inline"] = "url"
    machine_detection: Literal["DetectMessageEnd", "Enable"] = "DetectMessageEnd"
    machine_detection_timeout: int = Field(default=30, ge=3, le=59)
    ring_timeout: int = Field(default=30, ge=5, le=600)
    voice: str = Field(default="Polly.Joanna", max_length=64)
    language: str = Field(default="en-US", max_length=16)
    rate_limits: RateLimits = RateLimits(default=RateLimit(per_second=1, burst=1))


ChannelConfig = SmsChannel | EmailChannel | VoiceChannel
_MODELS: dict[str, type[_ChannelFile]] = {
    "sms": SmsChannel,
    "email": EmailChannel,
    "voice": VoiceChannel,
}


def read_channel_file(channels_dir: Path, channel: str) -> dict[str, Any]:
    path = channels_dir / f"{channel}.yaml"
    if not path.exists():
        return {}
    try:
        raw = yaml.safe_load(read_config_text(path)) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings")
    return raw


def load_channel(channels_dir: Path, channel: str) -> ChannelConfig:
    """The validated configuration of one channel (defaults where its file is missing)."""
    model = _MODELS.get(channel)
    if model is None:
        raise ConfigError(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}")
    raw = read_channel_file(channels_dir, channel)
    try:
        loaded = model.model_validate(raw)
    except ValidationError as exc:
        path = channels_dir / f"{channel}.yaml"
        raise ConfigError(f"{path}: {_describe(exc)}") from None
    assert isinstance(loaded, SmsChannel | EmailChannel | VoiceChannel)
    return loaded


def load_sms(channels_dir: Path) -> SmsChannel:
    loaded = load_channel(channels_dir, "sms")
    assert isinstance(loaded, SmsChannel)
    return loaded


def load_email(channels_dir: Path) -> EmailChannel:
    loaded = load_channel(channels_dir, "email")
    assert isinstance(loaded, EmailChannel)
    return loaded


def load_voice(channels_dir: Path) -> VoiceChannel:
    loaded = load_channel(channels_dir, "voice")
    assert isinstance(loaded, VoiceChannel)
    return loaded


def channel_problems(channels_dir: Path) -> list[str]:
    """Every channel file's mistakes, each naming the file, the field and the reason."""
    found = []
    for channel in CHANNELS:
        try:
            load_channel(channels_dir, channel)
        except ConfigError as exc:
            found.append(str(exc))
    return found


def _describe(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or '(file)'}: {error['msg']}"
        for error in exc.errors()
    )


def lint_policy(channels_dir: Path) -> LintPolicy:
    sms = read_channel_file(channels_dir, "sms")
    maximum = sms.get("max_segments", DEFAULT_MAX_SMS_SEGMENTS)
    if not isinstance(maximum, int) or not 1 <= maximum <= 10:
        raise ConfigError(f"{channels_dir / 'sms.yaml'}: max_segments must be a whole number 1-10")
    return LintPolicy(max_sms_segments=maximum)
