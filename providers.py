"""The table of providers: the dialects the app speaks, by the name PROVIDER gives them.

Each is a module with the interface written down in dialects.py. A third provider is one
new module and one line in this table; nothing else in the app names a provider.
"""

import fitbit_legacy
import google_health

PROVIDERS = {"fitbit": fitbit_legacy, "google": google_health}


def dialect_of(user):
    """The dialect a user's tokens speak: the one they signed in through."""
    return PROVIDERS[user.provider]


def account(user):
    """How the logs name a user: their provider, and its id for them (never a token)."""
    return f"{dialect_of(user).NAME} user {user.health_user_id or user.fitbit_id}"
