"""sandbox/__main__.py: `python -m sandbox` runs one stand-in alone, registered for the app
from the app's own settings, and prints the settings that point the app at it."""

import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

import sandbox.__main__
from sandbox import GoogleStandIn


def test_standalone_expects_the_app_on_its_port(monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    monkeypatch.setenv("PORT", "4107")
    monkeypatch.delenv("FITBIT_REDIRECT_URI", raising=False)
    monkeypatch.delenv("FITBIT_CLIENT_ID", raising=False)
    served = {}
    monkeypatch.setattr(
        sandbox.__main__, "run_simple", lambda host, port, app, **kw: served.update(app=app)
    )
    sandbox.__main__.main([])
    (client,) = served["app"].store.clients.all()
    assert client.redirect_uri == "http://localhost:4107/auth/callback"


def test_standalone_registers_the_client_from_the_environment(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    served = {}
    monkeypatch.setattr(
        sandbox.__main__,
        "run_simple",
        lambda host, port, app, **kw: served.update(host=host, port=port, app=app),
    )
    monkeypatch.setenv("FITBIT_CLIENT_ID", "ENV123")
    monkeypatch.setenv("FITBIT_CLIENT_SECRET", "env-secret")
    monkeypatch.setenv("FITBIT_REDIRECT_URI", "http://localhost:4000/auth/callback")
    sandbox.__main__.main(["--port", "4555"])
    assert (served["host"], served["port"]) == ("localhost", 4555)
    assert served["app"].store.clients.get("ENV123").client_secret == "env-secret"
    out = capsys.readouterr().out
    assert "FITBIT_TOKEN_URL=http://localhost:4555/oauth2/token" in out
    assert "env-secret" not in out  # the reader's own secret is not echoed back


def test_standalone_without_credentials_generates_and_prints_them(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    served = {}
    monkeypatch.setattr(
        sandbox.__main__, "run_simple", lambda host, port, app, **kw: served.update(app=app)
    )
    monkeypatch.delenv("FITBIT_CLIENT_ID", raising=False)
    monkeypatch.delenv("FITBIT_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("PORT", raising=False)
    sandbox.__main__.main([])
    (client,) = served["app"].store.clients.all()
    out = capsys.readouterr().out
    assert f"FITBIT_CLIENT_ID={client.client_id}" in out
    assert f"FITBIT_CLIENT_SECRET={client.client_secret}" in out
    assert client.redirect_uri == "http://localhost:4000/auth/callback"
    # Started again, it remembers them: an app configured with them keeps working.
    sandbox.__main__.main([])
    assert served["app"].store.clients.all() == [client]


def test_run_alone_it_speaks_googles_dialect_and_prints_the_settings(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SANDBOX_DATABASE", str(tmp_path / "stand-in.db"))
    for name in ("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET", "GOOGLE_REDIRECT_URI", "PORT"):
        monkeypatch.delenv(name, raising=False)
    served = {}
    monkeypatch.setattr(
        sandbox.__main__, "run_simple", lambda host, port, app, **kw: served.update(app=app)
    )
    sandbox.__main__.main(["--provider", "google", "--port", "4556"])
    stand_in = served["app"]
    assert isinstance(stand_in, GoogleStandIn)
    (client,) = stand_in.store.clients.all()
    assert client.client_id.endswith(".apps.googleusercontent.com")
    assert client.redirect_uri == "http://localhost:4000/auth/callback"
    assert os.path.exists(tmp_path / "stand-in-google.db")  # beside the Fitbit stand-in's
    out = capsys.readouterr().out
    assert f"GOOGLE_CLIENT_ID={client.client_id}" in out
    for line in (
        "GOOGLE_AUTHORIZE_URL=http://localhost:4556/o/oauth2/v2/auth",
        "GOOGLE_TOKEN_URL=http://localhost:4556/token",
        "GOOGLE_REVOKE_URL=http://localhost:4556/revoke",
        "GOOGLE_USERINFO_URL=http://localhost:4556/v1/userinfo",
        "GOOGLE_HEALTH_API_URL=http://localhost:4556",
        "GOOGLE_ISSUER=http://localhost:4556",
        "PROVIDER=google",  # pasted into .env, the lines give Google's dialect
    ):
        assert line in out


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_make_sandbox_reads_the_same_env_file_as_the_app(tmp_path):
    """docs/providers.md's `make sandbox`, in a copy of the project whose .env names the app's
    client: the stand-in registers that client instead of making one up."""
    for name in ("Makefile", "requirements.txt"):
        shutil.copy(os.path.join(ROOT, name), tmp_path)
    os.utime(tmp_path / "requirements.txt", (0, 0))  # older than the installed virtualenv
    for name in (".venv", "sandbox", "templates"):
        os.symlink(os.path.join(ROOT, name), tmp_path / name)
    (tmp_path / ".env").write_text(
        "FITBIT_CLIENT_ID=ENV123\nFITBIT_CLIENT_SECRET=env-secret\nPORT=4107\n"
        f"SANDBOX_DATABASE={tmp_path / 'stand-in.db'}\n"
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unset = ("FITBIT_CLIENT_ID", "FITBIT_CLIENT_SECRET", "PORT", "SANDBOX_DATABASE", "MAKEFLAGS")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    started = subprocess.Popen(
        ["make", "-s", "sandbox", f"SANDBOX_PORT={port}"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        first = started.stdout.readline()
        second = started.stdout.readline()
    finally:
        os.killpg(started.pid, signal.SIGTERM)
        started.wait(10)
        started.stdout.close()
    assert "using FITBIT_CLIENT_ID and FITBIT_CLIENT_SECRET from the environment" in first
    assert second.strip() == "* Redirect URI: http://localhost:4107/auth/callback"


def test_run_with_a_python_without_the_packages_it_says_what_to_run(tmp_path):
    # -S leaves out site-packages, like the system's Python without the virtualenv.
    ran = subprocess.run(
        [sys.executable, "-S", "-m", "sandbox"], cwd=ROOT, capture_output=True, text=True
    )
    assert ran.returncode == 1
    assert "Run `make sandbox`" in ran.stderr and "Traceback" not in ran.stderr


def test_its_help_names_it_as_it_is_run_and_lists_the_walk(capsys):
    with pytest.raises(SystemExit):
        sandbox.__main__.main(["--help"])
    shown = capsys.readouterr().out
    assert shown.startswith("usage: python -m sandbox ")
    assert "walk WHO STEPS" in shown
    with pytest.raises(SystemExit):
        sandbox.__main__.main(["walk", "--help"])
    assert capsys.readouterr().out.startswith("usage: python -m sandbox walk ")
