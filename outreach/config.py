"""Settings: one typed object, built once by the entry point from the environment and ``.env``.

Nothing here runs at import time. ``Settings.problems()`` lists what is wrong with an
effective configuration, each with its remedy; ``outreach config`` prints them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outreach.errors import ConfigError, OutreachError
from outreach.providers.http_pool import host_is_valid

Environment = Literal["development", "production"]
CollectorType = Literal["first_party", "third_party"]

# PUBLIC_BASE_URL hosts that are this machine: its port must be the web app's.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

# Values people leave in place of a real secret; refused outside development.
PLACEHOLDER_SECRETS = frozenset(
    {"", "change-me", "changeme", "change_me", "secret", "placeholder", "xxx", "test", "demo"}
)


@dataclass(frozen=True)
class Problem:
    """Something wrong with the configuration, with what to do about it."""

    setting: str
    message: str
    remedy: str
    severity: Literal["error", "warning"] = "error"


class Settings(BaseSettings):
    """Every setting outreach reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # "TWILIO_AUTH_TOKEN=" in .env means not set, not an empty credential.
        env_ignore_empty=True,
    )

    environment: Environment = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    secret_key: SecretStr = SecretStr("change-me")
    # Keys SECRET_KEY held before, comma-separated: links in emails already sent under them
    # still unsubscribe (new links are signed with SECRET_KEY alone).
    secret_key_previous: SecretStr | None = None

    database_url: str = "sqlite:///./outreach.db"

    templates_dir: Path = Path("templates")
    channels_dir: Path = Path("channels")
    schedules_dir: Path = Path("schedules")
    # An operator's compliance rules laid over the packaged ones (docs/compliance.md).
    compliance_rules_file: Path | None = None

    # Import defaults, used where a row leaves the column empty.
    default_region: str = "US"
    default_locale: str = "en_US"
    default_currency: str = "USD"
    default_cadence: str = "standard"
    default_collector_type: CollectorType = "first_party"
    import_batch_size: int = Field(default=1000, ge=1, le=50_000)

    # Providers: "auto" picks the real provider when its credentials are set, else the outbox.
    sms_provider: Literal["auto", "outbox", "twilio_sms"] = "auto"
    voice_provider: Literal["auto", "outbox", "twilio_voice"] = "auto"
    email_provider: Literal["auto", "outbox", "sendgrid_email"] = "auto"
    outbox_path: Path = Path("var/outbox.jsonl")

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_api_key_sid: str | None = None
    twilio_api_key_secret: SecretStr | None = None
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None

    sendgrid_api_key: SecretStr | None = None
    sendgrid_api_base_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    # Inbound Parse posts are signed the same way under a Parse security policy's own key.
    sendgrid_inbound_public_key: str | None = None
    sendgrid_from_email: str | None = None

    # A reply pauses its account's cadence until an agent handles it, or this many days.
    reply_pause_days: int = Field(default=14, ge=0, le=365)
    # Webhook events stored per transaction at most (each request waits for its own commit).
    webhook_batch_size: int = Field(default=500, ge=1, le=10_000)
    # Processes that plan a backlog together: 0 is one per CPU core, 1 plans in the daemon.
    plan_processes: int = Field(default=0, ge=0, le=64)
    # Processes that send a backlog together (on channels a real provider carries), the same way.
    dispatch_processes: int = Field(default=0, ge=0, le=64)

    public_base_url: str = "http://127.0.0.1:8000"
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8000, ge=1, le=65535)
    # The reverse proxies whose X-Forwarded-For and -Proto uvicorn trusts (its own syntax).
    forwarded_allow_ips: str = "127.0.0.1"

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        # psycopg 3 is the PostgreSQL driver we ship; SQLAlchemy's bare "postgresql://"
        # would look for psycopg2, which is not installed.
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    @field_validator("database_url")
    @classmethod
    def _home_expanded(cls, value: str) -> str:
        # sqlite3 does not expand "~": it would open a ./~/ folder where the command runs.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        if not value.startswith("sqlite"):
            return value
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            return value  # database_url_problem says what is wrong with it
        if not (url.database or "").startswith("~") or url.query.get("uri"):
            return value
        try:
            home = str(Path(url.database or "").expanduser())
        except RuntimeError:  # no HOME, and a user the system does not know
            raise ValueError(f"{url.database!r}: there is no home folder to find it in") from None
        return url.set(database=home).render_as_string(hide_password=False)

    @field_validator("twilio_api_base_url", "sendgrid_api_base_url", "public_base_url")
    @classmethod
    def _web_address(cls, value: str) -> str:
        # Refused at start rather than at the first send: a base URL without its scheme
        # or host can reach no one.
        parsed = urlsplit(value.strip())
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"{value!r} is not a web address such as https://api.example.com")
        if not host_is_valid(parsed.hostname):
            raise ValueError(f"{value!r}: its host name has an empty or too long part")
        return value.strip()

    @field_validator("sendgrid_from_email")
    @classmethod
    def _sender_address(cls, value: str | None) -> str | None:
        # Refused at start rather than by SendGrid, which would refuse every email for it.
        from outreach.importing.fields import email_address  # parsers load only when asked

        if value is None:
            return None
        email_address(value.strip())
        return value.strip()

    @field_validator("default_region", "default_currency")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The database URL may carry a password: settings printed in a log or a traceback
        # show it masked, as credentials (SecretStr) are.
        for name, value in super().__repr_args__():
            if name == "database_url" and isinstance(value, str):
                value = mask_url(value)
            yield name, value

    def previous_secret_keys(self) -> tuple[str, ...]:
        """SECRET_KEY_PREVIOUS's keys, in order, without blanks or the current key."""
        if self.secret_key_previous is None:
            return ()
        current = self.secret_key.get_secret_value()
        keys = (k.strip() for k in self.secret_key_previous.get_secret_value().split(","))
        return tuple(dict.fromkeys(k for k in keys if k and k != current))

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def twilio_configured(self) -> bool:
        has_token = self.twilio_auth_token is not None or (
            self.twilio_api_key_sid is not None and self.twilio_api_key_secret is not None
        )
        return bool(self.twilio_account_sid) and has_token

    def sendgrid_configured(self) -> bool:
        return self.sendgrid_api_key is not None

    def effective_providers(self) -> dict[str, str]:
        """Which provider carries each channel once "auto" is resolved."""
        twilio = self.twilio_configured()
        return {
            "sms": _resolve(self.sms_provider, "twilio_sms", twilio),
            "voice": _resolve(self.voice_provider, "twilio_voice", twilio),
            "email": _resolve(self.email_provider, "sendgrid_email", self.sendgrid_configured()),
        }

    def problems(self) -> list[Problem]:
        """Everything wrong with this configuration, errors first."""
        found: list[Problem] = []
        found += self.secret_problems()
        found += self._provider_problems()
        found += self._database_problems()
        found += self._import_default_problems()
        found += self._compliance_problems()
        found += self._channel_problems()
        found += self._folder_problems()
        return sorted(found, key=lambda p: p.severity != "error")

    def secret_problems(self) -> list[Problem]:
        found = []
        secrets: dict[str, SecretStr | None] = {
            "SECRET_KEY": self.secret_key,
            "TWILIO_AUTH_TOKEN": self.twilio_auth_token,
            "TWILIO_API_KEY_SECRET": self.twilio_api_key_secret,
            "SENDGRID_API_KEY": self.sendgrid_api_key,
        }
        # A placeholder among the previous keys would let anyone sign an unsubscribe link.
        placeholders = [k for k in self.previous_secret_keys() if is_placeholder(SecretStr(k))]
        if placeholders:
            secrets["SECRET_KEY_PREVIOUS"] = SecretStr(placeholders[0])
        for name, secret in secrets.items():
            if secret is None or not is_placeholder(secret):
                continue
            if self.environment == "development":
                found.append(
                    Problem(
                        name,
                        "holds a placeholder value",
                        f"fine for development; set a real {name} before production",
                        "warning",
                    )
                )
            elif name == "SECRET_KEY_PREVIOUS":
                found.append(
                    Problem(
                        name,
                        f"holds a placeholder key in {self.environment}",
                        "remove it: anyone could sign an unsubscribe link with it",
                    )
                )
            else:
                found.append(
                    Problem(
                        name,
                        f"holds a placeholder value in {self.environment}",
                        f"set {name} to a real secret (for SECRET_KEY: "
                        "python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                    )
                )
        return found

    def _provider_problems(self) -> list[Problem]:
        found = []
        twilio_chosen = self.sms_provider == "twilio_sms" or self.voice_provider == "twilio_voice"
        if twilio_chosen and not self.twilio_configured():
            found.append(
                Problem(
                    "TWILIO_ACCOUNT_SID",
                    "a Twilio provider is selected but its credentials are missing",
                    "set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID and "
                    "TWILIO_API_KEY_SECRET), or set SMS_PROVIDER/VOICE_PROVIDER=outbox",
                )
            )
        providers = self.effective_providers()
        partial_twilio = (
            any(
                value is not None
                for value in (
                    self.twilio_account_sid,
                    self.twilio_auth_token,
                    self.twilio_api_key_sid,
                    self.twilio_api_key_secret,
                )
            )
            and not self.twilio_configured()
        )
        if partial_twilio and not twilio_chosen:
            found.append(
                Problem(
                    "TWILIO_ACCOUNT_SID",
                    "some Twilio credentials are set but not all, so SMS and voice use the outbox",
                    "set TWILIO_ACCOUNT_SID with TWILIO_AUTH_TOKEN (or the API key pair), "
                    "or remove the partial ones",
                    "warning",
                )
            )
        if providers["voice"] == "twilio_voice" and not self.twilio_from_number:
            found.append(
                Problem(
                    "TWILIO_FROM_NUMBER",
                    "Twilio voice has no number to call from (a Messaging Service cannot call)",
                    "set TWILIO_FROM_NUMBER to a voice-capable number in E.164",
                )
            )
        if providers["sms"] == "twilio_sms" and not (
            self.twilio_from_number or self.twilio_messaging_service_sid
        ):
            found.append(
                Problem(
                    "TWILIO_FROM_NUMBER",
                    "Twilio SMS has no sender",
                    "set TWILIO_FROM_NUMBER (E.164) or TWILIO_MESSAGING_SERVICE_SID",
                )
            )
        if self.email_provider == "sendgrid_email" and not self.sendgrid_configured():
            found.append(
                Problem(
                    "SENDGRID_API_KEY",
                    "SendGrid email is selected but SENDGRID_API_KEY is missing",
                    "set SENDGRID_API_KEY, or set EMAIL_PROVIDER=outbox",
                )
            )
        if providers["email"] == "sendgrid_email":
            if not self.sendgrid_from_email:
                found.append(
                    Problem(
                        "SENDGRID_FROM_EMAIL",
                        "SendGrid email has no sender address",
                        "set SENDGRID_FROM_EMAIL to a verified sender",
                    )
                )
            if not self.sendgrid_webhook_public_key:
                found.append(
                    Problem(
                        "SENDGRID_WEBHOOK_PUBLIC_KEY",
                        "SendGrid event webhooks cannot be verified without the public key",
                        "copy the verification key from SendGrid's Event Webhook settings",
                    )
                )
        uses_twilio = providers["sms"] == "twilio_sms" or providers["voice"] == "twilio_voice"
        if uses_twilio and self.twilio_auth_token is None:
            found.append(
                Problem(
                    "TWILIO_AUTH_TOKEN",
                    "Twilio signs webhooks with the auth token, so without it every status "
                    "callback and reply is refused",
                    "set TWILIO_AUTH_TOKEN as well as the API key pair",
                )
            )
        real_provider = any(p != "outbox" for p in providers.values())
        local_url = any(host in self.public_base_url for host in ("127.0.0.1", "localhost"))
        if real_provider and local_url:
            found.append(
                Problem(
                    "PUBLIC_BASE_URL",
                    f"providers cannot reach {self.public_base_url} to deliver webhooks",
                    "set PUBLIC_BASE_URL to the https address providers can reach",
                    "warning" if self.environment == "development" else "error",
                )
            )
        return found

    def public_url_elsewhere(self, port: int) -> str | None:
        """A warning when ``PUBLIC_BASE_URL`` names this machine on another port than the
        web app's: the unsubscribe links and webhook addresses it makes would miss it."""
        parsed = urlsplit(self.public_base_url)
        hostname = parsed.hostname or ""
        if hostname not in LOCAL_HOSTS:
            return None  # a proxy's address, whose port is its own
        try:
            named = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError:
            return None  # not a port number: there is nothing to compare
        if named == port:
            return None
        host = f"[{hostname}]" if ":" in hostname else hostname
        suggested = parsed._replace(netloc=f"{host}:{port}").geturl()
        return (
            f"PUBLIC_BASE_URL is {self.public_base_url} but the web app listens on port "
            f"{port}: the unsubscribe links and webhook addresses in messages point at port "
            f"{named}. Set PUBLIC_BASE_URL={suggested}"
        )

    def _database_problems(self) -> list[Problem]:
        problem = database_url_problem(self.database_url)
        return [] if problem is None else [Problem("DATABASE_URL", problem, DATABASE_URL_REMEDY)]

    def _import_default_problems(self) -> list[Problem]:
        """Defaults that would make every imported row fail."""
        from babel import Locale, UnknownLocaleError
        from phonenumbers import SUPPORTED_REGIONS

        from outreach.cadence import cadence_names
        from outreach.importing.fields import known_currencies

        found = []
        try:
            Locale.parse(self.default_locale)
        except (ValueError, UnknownLocaleError):
            found.append(
                Problem(
                    "DEFAULT_LOCALE",
                    f"{self.default_locale!r} is not a known locale",
                    "use a locale such as en_US or es_US",
                )
            )
        if self.default_currency not in known_currencies():
            found.append(
                Problem(
                    "DEFAULT_CURRENCY",
                    f"{self.default_currency!r} is not an active ISO 4217 currency",
                    "use a code such as USD or EUR",
                )
            )
        if self.default_region not in SUPPORTED_REGIONS:
            found.append(
                Problem(
                    "DEFAULT_REGION",
                    f"{self.default_region!r} is not a phone-numbering region",
                    "use an ISO 3166-1 alpha-2 country code such as US or CA",
                )
            )
        cadences = cadence_names(self.schedules_dir)
        if self.default_cadence not in cadences:
            known = ", ".join(sorted(cadences)) or f"none in {self.schedules_dir}"
            found.append(
                Problem(
                    "DEFAULT_CADENCE",
                    f"{self.default_cadence!r} is not a cadence ({known})",
                    f"name a file in {self.schedules_dir} without its .yaml",
                )
            )
        return found

    def _compliance_problems(self) -> list[Problem]:
        from outreach.compliance.rules import load_ruleset  # the rules load only when asked

        try:
            load_ruleset(self.compliance_rules_file)
        except ConfigError as exc:
            return [Problem("COMPLIANCE_RULES_FILE", str(exc), "fix the file or unset the setting")]
        return []

    def _channel_problems(self) -> list[Problem]:
        from outreach.channels import channel_problems

        return [
            Problem(
                "CHANNELS_DIR", message, "fix the file (channels/README.md explains each field)"
            )
            for message in channel_problems(self.channels_dir)
        ]

    def _folder_problems(self) -> list[Problem]:
        """The templates and cadences every tick reads; channel files that are missing
        (their defaults apply)."""
        from outreach.cadence import load_cadences
        from outreach.rendering.context import load_company

        found = []
        # A folder that is a file, unreadable, or not UTF-8 is a problem to list too.
        unreadable = (OutreachError, OSError, ValueError)
        try:
            load_company(self.templates_dir)
        except unreadable as exc:
            # A company file read but wrong (a blank disclosure, say) is to be corrected
            # where it is; a missing one, looked for elsewhere.
            company_file = self.templates_dir / "company.yaml"
            remedy = (
                f"correct {company_file}"
                if isinstance(exc, ConfigError) and company_file.is_file()
                else "point TEMPLATES_DIR at the templates folder"
            )
            found.append(Problem("TEMPLATES_DIR", _said(exc), remedy))
        try:
            load_cadences(self.schedules_dir)
        except unreadable as exc:
            found.append(
                Problem("SCHEDULES_DIR", _said(exc), "point SCHEDULES_DIR at the cadences folder")
            )
        if not self.channels_dir.is_dir():
            found.append(
                Problem(
                    "CHANNELS_DIR",
                    f"{self.channels_dir} is not a folder: every channel runs on its defaults "
                    "(no rate limits, the standard STOP and HELP replies)",
                    "point CHANNELS_DIR at the channels folder",
                    "warning",
                )
            )
        return found


def _said(exc: Exception) -> str:
    """An error's words, with its kind where it is not one of outreach's own."""
    return str(exc) if isinstance(exc, OutreachError) else f"{type(exc).__name__}: {exc}"


def _resolve(choice: str, real: str, real_configured: bool) -> str:
    if choice == "auto":
        return real if real_configured else "outbox"
    return choice


def is_placeholder(secret: SecretStr) -> bool:
    value = secret.get_secret_value().strip().lower()
    return value in PLACEHOLDER_SECRETS or value.startswith(("your-", "your_", "<"))


_SECRET_QUERY_KEYS = ("password", "pass", "passwd", "sslpassword", "secret", "token")


def mask_url(url: str) -> str:
    """The URL with any password replaced (in the user part or the query), safe to print."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # an unparsable URL: print nothing that might be a secret
        return "(unparsable URL)"
    if parsed.host and "@" in parsed.host:
        # An "@" of the password left unencoded: the URL parser takes the password's end
        # for the host's start. All of it up to the last "@" is hidden.
        parsed = parsed.set(password="***", host=parsed.host.rsplit("@", 1)[1])  # noqa: S106
    hidden = {key: "***" for key in parsed.query if key.lower() in _SECRET_QUERY_KEYS}
    if hidden:
        parsed = parsed.update_query_dict(hidden)
    return parsed.render_as_string(hide_password=True)


DATABASE_URL_REMEDY = "use sqlite:///./outreach.db or postgresql+psycopg://user:pass@host/db"


def database_url_problem(url: str) -> str | None:
    """What is wrong with a database URL outreach cannot use, or None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if not url.startswith(("sqlite", "postgresql+psycopg://")):
        return f"unsupported database URL scheme in {mask_url(url)!r}"
    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 (a port that is not a number fails here)
    except (ArgumentError, ValueError):
        # The parser's own message would quote the URL, password and all.
        return (
            "it cannot be read as a database URL (is the port a number? are the password's "
            "special characters percent-encoded?)"
        )
    if parsed.host and "@" in parsed.host:
        return "it has more than one '@': percent-encode an '@' in the user name or password as %40"
    return None
