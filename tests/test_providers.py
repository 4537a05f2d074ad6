"""providers.py: the table of providers, and how the logs name a user of each."""

from types import SimpleNamespace

import fitbit_legacy
import google_health
from providers import account, dialect_of


def test_a_user_is_named_by_provider_and_id_never_by_token():
    fitbit_user = SimpleNamespace(
        provider="fitbit", fitbit_id="7QW2XR", health_user_id=None, access_token="SECRET"
    )
    google_user = SimpleNamespace(
        provider="google", fitbit_id="7QW2XR", health_user_id="hu-1", access_token="SECRET"
    )
    assert dialect_of(fitbit_user) is fitbit_legacy
    assert dialect_of(google_user) is google_health
    assert account(fitbit_user) == "Fitbit user 7QW2XR"
    assert account(google_user) == "Google Health user hu-1"
