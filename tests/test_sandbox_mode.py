"""sandbox_mode.py: with no client id, the app serves both stand-ins itself and is
registered at the one it talks to, the same registration for every worker."""

import google_health
import sandbox_mode
from settings import config_from_env


def config(tmp_path, **environ):
    return config_from_env({"SANDBOX_DATABASE": str(tmp_path / "stand-in.db"), **environ}, 4000)


def test_the_endpoints_point_at_the_stand_in_mounted_where_the_app_is(tmp_path):
    client = config(tmp_path, FITBIT_REDIRECT_URI="http://127.0.0.1:4107/auth/callback").client
    assert client.authorize_url == "http://127.0.0.1:4107/sandbox/oauth2/authorize"
    assert client.token_url == "http://127.0.0.1:4107/sandbox/oauth2/token"
    google = config(tmp_path, PROVIDER="google").client
    assert google.dialect is google_health
    assert google.token_url == "http://localhost:4000/sandbox/google/token"
    assert google.userinfo_url == "http://localhost:4000/sandbox/google/v1/userinfo"


def test_both_stand_ins_are_mounted_and_the_app_is_registered_at_its_own(tmp_path):
    registered, mounts = sandbox_mode.register(config(tmp_path))
    assert sorted(mounts) == ["/sandbox", "/sandbox/google"]
    (client,) = mounts["/sandbox"].store.clients.all()
    assert (client.client_id, client.client_secret) == (
        registered.client.client_id,
        registered.client.client_secret,
    )
    assert client.redirect_uri == "http://localhost:4000/auth/callback"
    assert mounts["/sandbox/google"].store.clients.all() == []  # each keeps its own state


def test_every_worker_gets_the_same_registration(tmp_path):
    first, _ = sandbox_mode.register(config(tmp_path))
    second, _ = sandbox_mode.register(config(tmp_path))  # another worker, the same file
    assert second.client == first.client and first.client.client_id


def test_the_stand_ins_token_lifetime_is_a_setting(tmp_path):
    _, mounts = sandbox_mode.register(config(tmp_path, SANDBOX_EXPIRES_IN="120"))
    assert mounts["/sandbox"].expires_in == 120
    _, mounts = sandbox_mode.register(config(tmp_path, PROVIDER="google"))
    assert mounts["/sandbox/google"].expires_in == 3599  # Google's own, an hour less a second
