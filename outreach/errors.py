"""The error tree.

Every error outreach raises on purpose derives from ``OutreachError``; its message says
what is wrong and what to do about it, so the CLI prints it without a traceback::

    OutreachError
    ├── ConfigError          a setting or a configuration file is wrong
    ├── DataFileError        an input file cannot be read at all (encoding, header, format)
    ├── NotFoundError        a named record (account reference, user...) does not exist
    ├── TemplateError        a template cannot be found, parsed, rendered or published
    ├── CadenceError         a cadence file is invalid (names the file, the step, the reason)
    ├── ChannelError         a provider did not take a message: retryable, ambiguous, or final
    └── WebhookRejected      a webhook failed verification (answer 403, never 400)
"""

from __future__ import annotations


class OutreachError(Exception):
    """Base of every error outreach raises on purpose."""


class ConfigError(OutreachError):
    """A setting or configuration file is missing or wrong."""


class DataFileError(OutreachError):
    """An input file cannot be read as a whole: nothing from it was imported."""


class NotFoundError(OutreachError):
    """A record named by the user does not exist."""


class TemplateError(OutreachError):
    """A template cannot be found, parsed or rendered, or fails lint."""


class CadenceError(OutreachError):
    """A cadence in schedules/ is invalid."""


MAX_RETRY_AFTER = 86_400.0  # seconds: a day


class ChannelError(OutreachError):
    """A provider did not take a message.

    ``retryable``: sending again is safe (nothing was accepted: 429, 503, or the request
    never left). ``ambiguous``: the request left and no clear answer came back (a timeout,
    another 5xx, a success without the provider's id), so the provider may have accepted
    it; the attempt must be held for review, never resent on its own.
    Neither: the provider refused it for good (most 4xx). ``outage`` (with ``retryable``):
    the provider refused our account or settings, not the message (credentials, a base URL):
    every message on the channel waits until they are fixed. ``suppression`` and
    ``contact_status`` carry what the refusal says about the address (an opt-out, a number
    that cannot receive) for the events stage to record. The message never holds a secret.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        retryable: bool = False,
        ambiguous: bool = False,
        outage: bool = False,
        retry_after: float | None = None,
        status_code: int | None = None,
        code: str | None = None,
        suppression: str | None = None,
        contact_status: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.ambiguous = ambiguous
        self.outage = outage
        # A provider's wait is taken up to a day: a longer one (or one no date can hold)
        # would leave the messages waiting for good, or overflow the time they wait until.
        self.retry_after = None if retry_after is None else min(retry_after, MAX_RETRY_AFTER)
        self.status_code = status_code
        self.code = code
        self.suppression = suppression
        self.contact_status = contact_status
        # The provider's own words, which may quote the recipient's address: kept off the
        # message (and so out of logs) but stored with the attempt.
        self.detail = detail


class WebhookRejected(OutreachError):
    """A webhook request failed verification; the web layer answers 403."""

    status_code = 403
