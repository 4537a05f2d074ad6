"""fitbit_legacy.py: Fitbit's own error shapes and rate-limit headers, as the app reads
them. (The steps both dialects share are in test_oauth.py.)"""

from datetime import UTC, datetime, timedelta

import pytest
from conftest import (
    ACCESS_TOKEN,
    PROFILE_URL,
    fitbit_error,
)
from freezegun import freeze_time

import fitbit_legacy
import oauth

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PROFILE = oauth.ApiRequest("GET", PROFILE_URL)


@pytest.mark.parametrize(
    "status, error_type, exception",
    [
        (400, "invalid_grant", oauth.ProviderError),
        (400, "invalid_request", oauth.ProviderError),
        (401, "invalid_client", oauth.ProviderError),
        (401, "expired_token", oauth.ProviderError),
        (403, "insufficient_scope", oauth.ProviderError),
        (410, "unknown", oauth.ApiRetired),
        (429, "system", oauth.RateLimited),
        (500, "system", oauth.ProviderUnavailable),
        (503, "system", oauth.ProviderUnavailable),
    ],
)
def test_fitbit_errors_become_exceptions_with_their_error_type(
    fitbit, client_config, status, error_type, exception
):
    body = fitbit_error(error_type, f"Access token expired: {ACCESS_TOKEN}")
    fitbit.get(PROFILE_URL, status=status, json=body if status != 410 else None)
    with pytest.raises(exception) as raised:
        oauth.api_call(client_config, PROFILE, ACCESS_TOKEN)
    assert (raised.value.status, raised.value.error_type) == (status, error_type)
    # Fitbit's own message can repeat the token: it stays out of the exception.
    assert ACCESS_TOKEN not in str(raised.value)


def test_error_body_that_is_not_fitbits_shape_still_gives_an_error(fitbit, client_config):
    fitbit.get(PROFILE_URL, status=400, body="<html>nope</html>")
    with pytest.raises(oauth.ProviderError) as raised:
        oauth.api_call(client_config, PROFILE, ACCESS_TOKEN)
    assert raised.value.error_type == "unknown"


@freeze_time(NOW)
def test_rate_limit_says_when_the_budget_comes_back(fitbit, client_config):
    fitbit.get(
        PROFILE_URL,
        status=429,
        json=fitbit_error("system"),
        headers={"Fitbit-Rate-Limit-Reset": "1234", "Retry-After": "5"},
    )
    with pytest.raises(oauth.RateLimited) as raised:
        oauth.api_call(client_config, PROFILE, ACCESS_TOKEN)
    assert raised.value.reset_at == NOW + timedelta(seconds=1234)


@freeze_time("2026-11-23 12:40:00")
def test_rate_limit_without_reset_header_waits_for_the_top_of_the_hour(fitbit, client_config):
    fitbit.get(PROFILE_URL, status=429, json=fitbit_error("system"))
    with pytest.raises(oauth.RateLimited) as raised:
        oauth.api_call(client_config, PROFILE, ACCESS_TOKEN)
    assert raised.value.reset_at == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)


@freeze_time(NOW)
@pytest.mark.parametrize(
    "headers, budget",
    [
        (
            {"Fitbit-Rate-Limit-Remaining": "149", "Fitbit-Rate-Limit-Reset": "600"},
            (149, NOW + timedelta(seconds=600)),
        ),
        ({}, (None, None)),
        ({"Fitbit-Rate-Limit-Remaining": "-1", "Fitbit-Rate-Limit-Reset": "soon"}, (None, None)),
        ({"Fitbit-Rate-Limit-Reset": "9" * 30}, (None, NOW + timedelta(hours=1))),
        ({"Fitbit-Rate-Limit-Remaining": "9" * 20}, (fitbit_legacy.MAX_RATE_BUDGET, None)),
        ({"Fitbit-Rate-Limit-Remaining": "9" * 5000}, (fitbit_legacy.MAX_RATE_BUDGET, None)),
        ({"Fitbit-Rate-Limit-Remaining": "١٢"}, (None, None)),  # Arabic-Indic 12
    ],
    ids=["normal", "absent", "garbage", "absurd-reset", "20-digits", "5000-digits", "unicode"],
)
def test_rate_budget_from_headers(headers, budget):
    assert fitbit_legacy.rate_budget(headers) == budget
