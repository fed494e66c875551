"""Provider names to classes, and building the provider that carries each channel."""

from __future__ import annotations

import httpx

from outreach.channels import load_email, load_sms, load_voice
from outreach.clock import Clock
from outreach.config import Settings
from outreach.errors import ConfigError
from outreach.providers.base import Channel, Provider
from outreach.providers.outbox import Outbox
from outreach.providers.sendgrid_email import SendgridEmail
from outreach.providers.twilio_sms import TwilioSms
from outreach.providers.twilio_voice import TwilioVoice

# Every provider by its name, explicitly: what the settings and the webhook routes name.
PROVIDERS: dict[str, type[Provider]] = {
    Outbox.name: Outbox,
    TwilioSms.name: TwilioSms,
    TwilioVoice.name: TwilioVoice,
    SendgridEmail.name: SendgridEmail,
}


def build_provider(
    name: str, channel: Channel, settings: Settings, client: httpx.AsyncClient, clock: Clock
) -> Provider:
    """The provider ``name`` for ``channel``, configured from settings and channels/."""
    if name not in PROVIDERS:
        raise ConfigError(f"unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
    if name == Outbox.name:
        config = {"sms": load_sms, "email": load_email, "voice": load_voice}[channel](
            settings.channels_dir
        )
        return Outbox(settings, clock, channel, config.outbox)
    provider_class = PROVIDERS[name]
    if provider_class.channel != channel:
        raise ConfigError(f"provider {name} carries {provider_class.channel}, not {channel}")
    if provider_class is TwilioSms:
        return TwilioSms(settings, client, clock, load_sms(settings.channels_dir))
    if provider_class is TwilioVoice:
        return TwilioVoice(settings, client, clock, load_voice(settings.channels_dir))
    return SendgridEmail(settings, client, clock, load_email(settings.channels_dir))


def build_providers(
    settings: Settings, client: httpx.AsyncClient, clock: Clock
) -> dict[str, Provider]:
    """The provider in use for each channel (``Settings.effective_providers``)."""
    chosen = settings.effective_providers()
    channels: tuple[Channel, ...] = ("sms", "email", "voice")
    return {
        channel: build_provider(chosen[channel], channel, settings, client, clock)
        for channel in channels
    }
