"""The error tree.

Every error outreach raises on purpose derives from ``OutreachError``; its message says
what is wrong and what to do about it, so the CLI prints it without a traceback::

    OutreachError
    ├── ConfigError          a setting or a configuration file is wrong
    ├── DataFileError        an input file cannot be read at all (encoding, header, format)
    ├── NotFoundError        a named record (account reference, user...) does not exist
    ├── TemplateError        a template cannot be found, parsed, rendered or published
    └── CadenceError         a cadence file is invalid (names the file, the step, the reason)
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
