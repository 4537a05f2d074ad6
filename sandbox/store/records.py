"""What the stand-in's store hands back: plain, frozen records."""

import secrets
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class RegisteredClient:
    """An app registered at dev.fitbit.com: a Server (confidential) client."""

    client_id: str
    client_secret: str
    redirect_uri: str
    name: str = "OAuth Teaching App"

    def __post_init__(self):
        # dev.fitbit.com refuses application names with the word "Fitbit" in them.
        if "fitbit" in self.name.lower():
            raise ValueError('An application name may not contain the word "Fitbit".')


@dataclass(frozen=True)
class Grant:
    """What one Allow granted: who, to which app, with what scope. Every token issued from
    it, through all its refreshes, belongs to the same grant."""

    client_id: str
    user_id: str
    scope: str
    grant_id: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True)
class AuthorizationCode:
    grant: Grant
    redirect_uri: str
    code_challenge: str
    issued_at: datetime


@dataclass(frozen=True)
class ConsentRequest:
    """An authorization request waiting for the user to click Allow or Deny."""

    client: RegisteredClient
    scopes: tuple
    state: str | None
    code_challenge: str
    created_at: datetime


@dataclass(frozen=True)
class AccessToken:
    grant: Grant
    expires_at: datetime


@dataclass(frozen=True)
class Subscriber:
    """Where an app hears of changes, and the secret its deliveries carry: Fitbit's
    verification code, or the Authorization value given to Google."""

    client_id: str
    endpoint: str
    secret: str = field(repr=False)
    subscriber_id: str = "1"
    verified: bool = False


@dataclass(frozen=True)
class Subscription:
    """Fitbit's: one user's collection ("" for all of them), under the app's own id."""

    client_id: str
    subscription_id: str
    user_id: str
    collection: str
    subscriber_id: str = "1"
