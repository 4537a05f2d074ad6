"""Local stand-ins for the two providers, Fitbit and Google, each written from the
provider's side: they share no code with the client in oauth.py and the dialects.

Each stand-in is one WSGI app with the two roles of RFC 6749 1.1: an authorization server,
which issues tokens, and a resource server, which serves data with them.

    common.py                  what both share: OAuth 2.0's own rules, dispatch, the demo data
    recordings.py              what the demo people's trackers recorded: nights, heart rates
    walk_page.py               where the demo people walk, or log a night
    fitbit.py                  Fitbit's stand-in, with Fitbit's error shape
    fitbit_authorization.py    its consent page, token endpoint and revocation
    fitbit_resources.py        its Web API: profile, steps, subscriptions
    fitbit_sleep_heart.py      its Web API: sleep and heart rate
    fitbit_dates.py            how its time-series paths name their days
    google.py                  Google's stand-in, with Google's error shapes
    google_authorization.py    its consent page, token endpoint and revocation
    google_resources.py        userinfo and the Health API: identity, profile, steps
    google_sleep_heart.py      the Health API: sleep and daily resting heart rate
    google_lists.py            dataPoints.list's filter and pages, for any data type
    google_status.py           the Health API's error, google.rpc.Status
    google_webhooks.py         its signing keys and signed notifications
    store/                     what a stand-in remembers, in a SQLite file of its own
    __main__.py                `python -m sandbox [--provider google] --port N`

In sandbox mode the app mounts both (see sandbox_mode.py); run one alone with
`python -m sandbox`.
"""

try:
    import werkzeug  # noqa: F401 (the first of the packages in requirements.txt)
except ModuleNotFoundError:  # started with a Python that has none of them, such as the system's
    raise SystemExit(
        "This Python lacks the stand-in's packages. Run `make sandbox`, which installs them "
        "into .venv and starts it, or run `.venv/bin/python -m sandbox` once it exists."
    ) from None

from .fitbit import FitbitStandIn
from .google import GoogleStandIn
from .store import RegisteredClient

# The stand-ins' own SQLite file (SANDBOX_DATABASE); Google's is beside it.
DEFAULT_DATABASE = "fitbit_sandbox.db"
STAND_INS = {"fitbit": FitbitStandIn, "google": GoogleStandIn}

__all__ = ["DEFAULT_DATABASE", "STAND_INS", "FitbitStandIn", "GoogleStandIn", "RegisteredClient"]
