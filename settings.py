"""The app's settings: read from environment variables once, at start-up, and checked.

PROVIDER picks the dialect from providers.PROVIDERS; each dialect names its own settings
(fitbit_legacy.SETTINGS, google_health.SETTINGS), and the rest are shared. Without the
provider's client id, or with FITBIT_SANDBOX=1, the app talks to the built-in stand-in
(the `sandbox` package), which is imported only then.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

import encryption
import oauth
import sandbox_mode
from database import key_file_for
from providers import PROVIDERS
from sessions import LOOPBACK_NAMES

DEFAULT_PORT = 4000


@dataclass(frozen=True)
class WebhookSettings:
    """What the provider's webhooks need (webhooks.py): off while `secret` is unset. Each
    dialect names the variable behind each field (WEBHOOK_SETTINGS)."""

    # Google: the whole Authorization value it sends ("Bearer ..."); Fitbit: the
    # subscriber's verification code. Either way, never shown.
    secret: str = field(default="", repr=False)
    keyset_url: str = ""  # Google's: where its signing keys are published
    subscriber_id: str = ""  # Fitbit's: which subscriber, when the app has several


@dataclass(frozen=True)
class Config:
    client: oauth.Client  # its dialect is the provider the app talks to
    database_url: str = "sqlite:///fitbit_app.db"
    # Keys the hash of session ids in the database. Without SECRET_KEY, a random key is
    # made once and kept in the database, so that every process and worker uses the same.
    secret_key: bytes | None = field(default=None, repr=False)
    # Sandbox mode: the stand-ins for both providers (the sandbox package) are served from
    # /sandbox in this same process, and the client above is registered there.
    sandbox: bool = False
    sandbox_expires_in: int | None = None  # None: the stand-in's own default
    # What Fitbit's stand-in gives of the intraday heart rate (sandbox/fitbit_day.py).
    sandbox_intraday: str = "granted"
    # The stand-in's own SQLite file, shared by every worker and kept across restarts;
    # None: the sandbox package's default.
    sandbox_database: str | None = None
    # How long a provider's answer is reused before asking again; 0 asks on every view. With
    # webhooks, a change makes it stale sooner, so this can be hours.
    cache_seconds: int = 300
    webhooks: WebhookSettings = WebhookSettings()
    # Behind one TLS-terminating proxy: believe its X-Forwarded-Proto and X-Forwarded-For,
    # so that the cookie is Secure. Off by default: without such a proxy, anyone could send
    # those headers.
    trust_proxy: bool = False

    # Credentials set for the provider that is not selected: named at start-up, never used.
    unused_settings: tuple = ()
    # TOKEN_ENCRYPTION_KEYS, newest first; empty: a key kept beside the database.
    encryption_keys: tuple = field(default=(), repr=False)

    @property
    def configured(self):
        return self.sandbox or bool(self.client.client_id and self.client.client_secret)

    @property
    def sandbox_notice(self):
        dialect = self.client.dialect
        return (
            f"You are signing in to a local stand-in for {dialect.NAME}. Set "
            f"{dialect.SETTINGS['client_id']} and {dialect.SETTINGS['client_secret']} to use "
            "the real one."
        )


def config_from_env(environ, port):
    """Read PROVIDER, its settings (FITBIT_* or GOOGLE_*) and the shared ones from
    environment variables. Without the provider's client id, or with FITBIT_SANDBOX=1, the
    app talks to the built-in stand-in, in that provider's dialect."""
    name = environ.get("PROVIDER") or "fitbit"
    if name not in PROVIDERS:
        raise SystemExit(f"PROVIDER={name!r} is not known: use fitbit or google.")
    dialect = PROVIDERS[name]
    settings = {
        "database_url": environ.get("DATABASE_URL") or Config.database_url,
        "cache_seconds": seconds_setting(environ, "FITBIT_CACHE_SECONDS", Config.cache_seconds),
        "trust_proxy": environ.get("TRUST_PROXY") == "1",
        "unused_settings": unused_settings(environ, dialect),
    }
    if environ.get("SECRET_KEY"):
        settings["secret_key"] = environ["SECRET_KEY"].encode()

    def setting(field_name):
        variable = dialect.SETTINGS.get(field_name)
        return (environ.get(variable) or "") if variable else ""

    # From configuration, never from the request's Host header (docs/security.md item 6).
    redirect_uri = setting("redirect_uri") or f"http://localhost:{port}/auth/callback"
    sandbox = environ.get("FITBIT_SANDBOX") == "1" or not setting("client_id")
    if sandbox:
        stand_in = sandbox_mode.stand_in_for(dialect)
        settings["sandbox_database"] = environ.get("SANDBOX_DATABASE") or None
        settings["sandbox_expires_in"] = seconds_setting(
            environ, "SANDBOX_EXPIRES_IN", stand_in.DEFAULT_EXPIRES_IN
        )
        settings["sandbox_intraday"] = intraday_setting(environ)
        # The stand-in's endpoints are read as if they had been set to point at it. It
        # registers the app itself in create_app(): a real secret set in the environment
        # never reaches it.
        environ = {**environ, **sandbox_mode.endpoints(stand_in, redirect_uri)}
        client_id = client_secret = ""
    else:
        client_id, client_secret = setting("client_id"), setting("client_secret")
    # Each endpoint is the provider's own unless set, as FITBIT_TOKEN_URL, GOOGLE_TOKEN_URL,
    # and so on; Google's API root is GOOGLE_HEALTH_API_URL.
    fields = ("scopes", "issuer", *oauth.ENDPOINTS)
    chosen = {name: setting(name) for name in fields if setting(name)}
    client = oauth.Client(
        dialect=dialect,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        **chosen,
    )
    settings["encryption_keys"] = encryption_keys(environ, sandbox or on_this_machine(client))
    webhooks = webhook_settings(environ, dialect)
    return Config(client=client, sandbox=sandbox, webhooks=webhooks, **settings)


def encryption_keys(environ, stand_in):
    """TOKEN_ENCRYPTION_KEYS, newest first. Without it, an app that talks to a stand-in
    (sandbox mode, or one run on its own) keeps a key beside the database
    (database.key_file_for); an app that signs real people in must be given one."""
    text = environ.get(encryption.SETTING, "")
    if text.strip():
        return encryption.parse_keys(text)
    if not stand_in:
        raise SystemExit(
            f"{encryption.SETTING} is not set: the users' tokens are encrypted with it. Make a "
            f"key with `{encryption.MAKE_A_KEY}` and set {encryption.SETTING} to it (in .env), "
            "and keep a copy: without it the tokens kept cannot be read."
        )
    return ()


def on_this_machine(client):
    """Whether every endpoint the app talks to is on this machine: a stand-in run on its own
    (`make sandbox`), which signs no real person in. One real endpoint, and it is not."""
    urls = (client.authorize_url, client.token_url, client.api_url)
    return all(urlsplit(url).hostname in LOOPBACK_NAMES for url in urls)


def intraday_setting(environ):
    """SANDBOX_FITBIT_INTRADAY: what Fitbit's stand-in gives an app of a day's heart rate:
    granted (the default), omitted or forbidden."""
    value = environ.get("SANDBOX_FITBIT_INTRADAY") or "granted"
    answers = ("granted", "omitted", "forbidden")
    if value not in answers:
        raise SystemExit(
            f"SANDBOX_FITBIT_INTRADAY must be one of {', '.join(answers)}, not {value!r}."
        )
    return value


def webhook_settings(environ, dialect):
    """The dialect's webhook settings (its WEBHOOK_SETTINGS), over its defaults."""
    chosen = {
        name: environ[variable]
        for name, variable in dialect.WEBHOOK_SETTINGS.items()
        if environ.get(variable)
    }
    return WebhookSettings(**{**dialect.WEBHOOK_DEFAULTS, **chosen})


def unused_settings(environ, dialect):
    """The other providers' credentials, if any are set: named at start-up, never used."""
    others = tuple(
        f"{other.SETTINGS_PREFIX}_CLIENT_" for other in PROVIDERS.values() if other is not dialect
    )
    return tuple(
        sorted(
            variable for variable, value in environ.items() if value and variable.startswith(others)
        )
    )


def port_setting(environ, default=DEFAULT_PORT):
    """PORT: where the app listens, and so where its default redirect URI points."""
    value = environ.get("PORT") or str(default)
    if not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
        raise SystemExit(f"PORT must be a port number from 1 to 65535, not {value!r}.")
    return int(value)


def seconds_setting(environ, name, default):
    value = environ.get(name) or str(default)
    if not (value.isascii() and value.isdigit()):
        raise SystemExit(f"{name} must be a whole number of seconds, not {value!r}.")
    return int(value)


def start_up_lines(config):
    """What the start-up output says about the provider and its settings."""
    client = config.client
    names = client.dialect.SETTINGS
    if config.sandbox:
        lines = [config.sandbox_notice]
    elif not config.configured:
        lines = [f"{names['client_secret']} is missing: set it, or unset {names['client_id']}."]
    else:
        lines = [
            f"Talking to {client.dialect.TITLE}: sign-in at {client.authorize_url}, tokens at "
            f"{client.token_url}, data from {client.api_url}"
        ]
    if not config.encryption_keys:
        kept = key_file_for(config.database_url) or "memory, for this run only"
        lines.append(
            f"Tokens and cached answers are encrypted at rest with the key kept in {kept}; "
            f"set {encryption.SETTING} to keep it elsewhere."
        )
    if config.unused_settings:
        lines.append(
            f"WARNING: {', '.join(config.unused_settings)} set, but PROVIDER is "
            f"{client.dialect.KEY}: not used."
        )
    return lines
