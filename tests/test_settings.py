"""settings.py: the app's settings from the environment (and from .env through make), each
checked at start-up, and what the start-up output says about them."""

import os
import shutil
import subprocess
import sys

import pytest
from conftest import page
from werkzeug.test import Client

import encryption
import fitbit_oauth_app
import google_health
import settings
from fitbit_oauth_app import create_app
from settings import port_setting, start_up_lines

# A client id in Google's style, and its secret.
CLIENT_ID = "123-abc.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-settings-test-secret"
# The encryption key a real client id needs: every test here gives one, unless it says.
KEY = encryption.new_key_text()


def config_from_env(environ, port):
    return settings.config_from_env({encryption.SETTING: KEY, **environ}, port)


def test_trust_proxy_setting():
    assert config_from_env({"TRUST_PROXY": "1"}, 4000).trust_proxy
    assert not config_from_env({}, 4000).trust_proxy


def test_without_a_client_id_the_app_uses_the_stand_in():
    config = config_from_env({}, 4000)
    assert config.sandbox and config.configured
    assert config.client.authorize_url == "http://localhost:4000/sandbox/oauth2/authorize"
    assert config.client.token_url == "http://localhost:4000/sandbox/oauth2/token"
    assert config.client.api_url == "http://localhost:4000/sandbox"
    assert config.client.redirect_uri == "http://localhost:4000/auth/callback"


def test_fitbit_sandbox_forces_the_stand_in_even_with_credentials():
    env = {"FITBIT_CLIENT_ID": "REAL12", "FITBIT_CLIENT_SECRET": "real", "FITBIT_SANDBOX": "1"}
    config = config_from_env(env, 4000)
    assert config.sandbox
    assert config.client.client_id != "REAL12"  # the real secret never goes to the stand-in


def test_with_credentials_the_app_talks_to_fitbit():
    env = {"FITBIT_CLIENT_ID": "REAL12", "FITBIT_CLIENT_SECRET": "real", "PORT": "4000"}
    config = config_from_env(env, 5000)
    assert not config.sandbox
    assert (config.client.client_id, config.client.client_secret) == ("REAL12", "real")
    assert config.client.authorize_url == "https://www.fitbit.com/oauth2/authorize"
    assert config.client.token_url == "https://api.fitbit.com/oauth2/token"
    assert config.client.redirect_uri == "http://localhost:5000/auth/callback"


@pytest.mark.parametrize(
    "environment, port",
    [({}, "4107"), ({"PORT": "4106"}, "4106")],
    ids=[".env-fills-in", "environment-wins"],
)
def test_make_takes_from_env_file_only_what_the_environment_leaves_unset(
    tmp_path, environment, port
):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shutil.copy(os.path.join(root, "Makefile"), tmp_path)
    (tmp_path / ".env").write_text("PORT=4107\nFITBIT_SCOPES=activity profile\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "FITBIT_SCOPES", "MAKEFLAGS")}
    shown = subprocess.run(
        ["make", "-s", "--eval", "show: ; @echo $$PORT $$FITBIT_SCOPES", "show"],
        cwd=tmp_path,
        env={**env, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    assert shown.stdout.strip() == f"{port} activity profile"


def test_the_example_settings_let_the_redirect_uri_follow_the_port():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, ".env.example")) as example:
        lines = [line.strip() for line in example if line.strip() and line[0] != "#"]
    settings = dict(line.split("=", 1) for line in lines)
    assert settings["FITBIT_REDIRECT_URI"] == ""
    assert config_from_env({**settings, "PORT": "4106"}, 4106).client.redirect_uri == (
        "http://localhost:4106/auth/callback"
    )


def test_in_real_mode_the_page_and_the_start_up_say_where_fitbit_is(
    monkeypatch, tmp_path, capsys, browser
):
    footer = page(browser.get("/"))
    assert (
        "Talking to the legacy Fitbit Web API: sign-in at <code>https://www.fitbit.com/oauth2/authorize</code>"
        in (footer)
    )
    assert "data\n    from <code>https://api.fitbit.com</code>" in footer
    monkeypatch.setattr(fitbit_oauth_app, "run_simple", lambda *args, **kwargs: None)
    monkeypatch.setenv("FITBIT_CLIENT_ID", "REAL12")
    monkeypatch.setenv("FITBIT_CLIENT_SECRET", "real-secret")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'real.db'}")
    monkeypatch.setenv(encryption.SETTING, KEY)
    fitbit_oauth_app.main([])
    out = capsys.readouterr().out
    assert "tokens at https://api.fitbit.com/oauth2/token" in out
    assert "real-secret" not in out and KEY not in out
    assert not (tmp_path / "real.db.key").exists()  # the key set is the one used


def test_client_id_without_a_secret_explains_what_to_set(tmp_path):
    config = config_from_env(
        {"FITBIT_CLIENT_ID": "REAL12", "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}, 4000
    )
    browser = Client(create_app(config))
    assert "FITBIT_CLIENT_SECRET" in page(browser.get("/"))
    assert browser.get("/auth").status_code == 503


def test_cache_seconds_setting():
    assert config_from_env({}, 4000).cache_seconds == 300
    assert config_from_env({"FITBIT_CACHE_SECONDS": "0"}, 4000).cache_seconds == 0
    with pytest.raises(SystemExit, match="FITBIT_CACHE_SECONDS"):
        config_from_env({"FITBIT_CACHE_SECONDS": "five"}, 4000)


def test_provider_google_reads_the_google_settings():
    env = {
        "PROVIDER": "google",
        "GOOGLE_CLIENT_ID": CLIENT_ID,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_TOKEN_URL": "https://token.example/token",
        "GOOGLE_HEALTH_API_URL": "https://health.example",
        "GOOGLE_USERINFO_URL": "https://id.example/userinfo",
    }
    client = config_from_env(env, 4107).client
    assert client.dialect is google_health and client.client_id == CLIENT_ID
    assert client.redirect_uri == "http://localhost:4107/auth/callback"
    assert client.token_url == "https://token.example/token"
    assert client.api_url == "https://health.example"
    assert client.userinfo_url == "https://id.example/userinfo"
    assert client.authorize_url == google_health.AUTHORIZE_URL
    assert client.revoke_url == google_health.REVOKE_URL


def test_provider_google_without_a_client_id_uses_the_google_stand_in():
    config = config_from_env({"PROVIDER": "google", "FITBIT_CLIENT_ID": "x"}, 4000)
    assert config.sandbox and config.client.dialect is google_health
    assert config.client.token_url == "http://localhost:4000/sandbox/google/token"
    lines = start_up_lines(config)
    assert "local stand-in for Google Health" in lines[0]
    # Credentials for the provider not selected are named, and not used.
    assert lines[1] == "WARNING: FITBIT_CLIENT_ID set, but PROVIDER is google: not used."


def test_an_unknown_provider_stops_the_app_with_its_name():
    with pytest.raises(SystemExit, match="PROVIDER='garmin' is not known"):
        config_from_env({"PROVIDER": "garmin"}, 4000)


def test_the_issuer_is_googles_own_unless_set():
    client = config_from_env({"PROVIDER": "google", "GOOGLE_CLIENT_ID": "x"}, 4000).client
    assert client.issuer == "https://accounts.google.com"
    stand_in = config_from_env({"PROVIDER": "google"}, 4000).client
    assert stand_in.issuer == "http://localhost:4000/sandbox/google"  # what its callback sends
    env = {"PROVIDER": "google", "GOOGLE_CLIENT_ID": "x", "GOOGLE_ISSUER": "https://id.example"}
    assert config_from_env(env, 4000).client.issuer == "https://id.example"
    assert config_from_env({"FITBIT_CLIENT_ID": "x"}, 4000).client.issuer == ""


@pytest.mark.parametrize("port", ["abc", "0", "65536", "40 00", "４０００"])
def test_a_port_that_is_no_port_is_named_not_a_traceback(tmp_path, port):
    environ = {**os.environ, "PORT": port, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"}
    started = subprocess.run(
        [sys.executable, "fitbit_oauth_app.py"],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert started.returncode != 0
    assert f"PORT must be a port number from 1 to 65535, not {port!r}." in started.stderr
    assert "Traceback" not in started.stderr


def test_the_port_sets_the_redirect_uri_and_defaults_to_4000():
    assert port_setting({}) == 4000 and port_setting({"PORT": ""}) == 4000
    assert port_setting({"PORT": "4106"}) == 4106


def test_a_real_client_id_without_an_encryption_key_does_not_start():
    env = {"FITBIT_CLIENT_ID": "REAL12", "FITBIT_CLIENT_SECRET": "real"}
    with pytest.raises(SystemExit, match="TOKEN_ENCRYPTION_KEYS is not set") as stopped:
        settings.config_from_env(env, 4000)
    # A command that runs as written: the system's Python lacks the venv's cryptography.
    assert "`.venv/bin/python encryption.py`" in str(stopped.value)


@pytest.mark.parametrize("provider", ["fitbit", "google"])
def test_against_a_stand_in_on_this_machine_a_key_is_kept_beside_the_database(tmp_path, provider):
    """The lines `make sandbox` prints, pasted into .env, hold a client id; the endpoints
    they name are on this machine, so the app keeps a key as in sandbox mode."""
    import sandbox

    prefix = provider.upper()
    env = {
        "PROVIDER": provider,
        f"{prefix}_CLIENT_ID": "ALONE1",
        f"{prefix}_CLIENT_SECRET": "alone-secret",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}",
        **sandbox.STAND_INS[provider].settings("http://localhost:4001"),
    }
    config = settings.config_from_env(env, 4000)
    assert not config.sandbox and config.encryption_keys == ()
    assert any(str(tmp_path / "app.db.key") in line for line in start_up_lines(config))
    # One endpoint elsewhere, and it is a real provider: a key must be given.
    with pytest.raises(SystemExit, match="TOKEN_ENCRYPTION_KEYS is not set"):
        settings.config_from_env({**env, f"{prefix}_TOKEN_URL": "https://tokens.example"}, 4000)


@pytest.mark.parametrize("bad", ["short", "a" * 43 + "!", " , "])
def test_a_malformed_encryption_key_does_not_start_and_names_the_setting(bad):
    env = {"FITBIT_CLIENT_ID": "REAL12", "FITBIT_CLIENT_SECRET": "real", encryption.SETTING: bad}
    with pytest.raises(SystemExit, match="TOKEN_ENCRYPTION_KEYS"):
        settings.config_from_env(env, 4000)


def test_keys_are_read_newest_first():
    newer, older = encryption.new_key_text(), encryption.new_key_text()
    env = {encryption.SETTING: f"{newer}, {older}"}
    config = settings.config_from_env(env, 4000)
    assert [encryption.key_id(key) for key in config.encryption_keys] == [
        encryption.key_id(encryption.parse_keys(text)[0]) for text in (newer, older)
    ]


def test_in_sandbox_mode_without_a_key_the_start_up_says_where_it_is_kept(tmp_path):
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}"}
    config = settings.config_from_env(env, 4000)
    assert config.encryption_keys == ()
    [line] = [line for line in start_up_lines(config) if "encrypted at rest" in line]
    assert str(tmp_path / "app.db.key") in line
    create_app(config)
    key_file = tmp_path / "app.db.key"
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert len(encryption.parse_keys(key_file.read_text())) == 1
    # A second start keeps the same key.
    before = key_file.read_text()
    create_app(config)
    assert key_file.read_text() == before
