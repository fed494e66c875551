"""Reading the operator's configuration files: channels, company, templates, rules, .env.

A file saved in another encoding, a folder in a file's place, or a file without read
permission is a ``ConfigError`` naming the file, which the CLI prints as one line and
``outreach config`` lists, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

from outreach.errors import ConfigError


def read_config_text(path: Path) -> str:
    """The text of a UTF-8 configuration file, its line endings made ``\\n`` as
    ``Path.read_text`` makes them (a template's text, and so its hash, does not depend on
    the editor that saved it).

    A missing file raises ``FileNotFoundError`` as it is: to one caller it means the
    defaults apply, to another that a setting is wrong, and each says so in its own words.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise unreadable(path, exc) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise unreadable(path, exc) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def unreadable(path: Path, exc: OSError | UnicodeDecodeError) -> ConfigError:
    """The error for a configuration file that could not be read, or decoded as UTF-8."""
    if isinstance(exc, UnicodeDecodeError):
        # Refused rather than guessed: a Latin-1 file would put garbled names in messages.
        line = exc.object.count(b"\n", 0, exc.start) + 1
        return ConfigError(f"{path}: not UTF-8 (line {line}): re-save it as UTF-8")
    return ConfigError(f"{path}: cannot be read ({exc.strerror or exc})")
