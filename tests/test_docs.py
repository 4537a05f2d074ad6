"""The README and docs/ are claims too, and stale ones mislead the very reader they are for.

Every name they give in code (a module, a file, a function, a class, a setting, a make
target, a test) must exist; and the shell blocks marked `<!-- runs: NAME -->` must run as
written, from a copy of the project, the way a newcomer runs them: `make run` reaches the
signed-in page in each dialect, a stand-in run on its own is met with the lines it
prints in `.env`, the webhook registration goes through at that stand-in, and `make
reencrypt` seals the rows again. (Only the ports change, so that the commands can run
beside whatever else this machine serves.)
"""

import ast
import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import peewee
import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
SPAN = re.compile(r"`([^`\n]+)`")
RUNS = re.compile(r"<!-- runs: ([\w-]+) -->\n```sh\n(.*?)```", re.S)
PATH = re.compile(r"^[\w./-]+\.(py|html|css|md|txt|toml|sql|json|svg|png|example)$|^[\w./-]+/$")
DOTTED = re.compile(r"^([A-Za-z_]\w*)((?:[.:][A-Za-z_]\w*)+)(?:\(\))?$")
SETTING = re.compile(r"^([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|PORT|PROVIDER|WORKERS|THREADS)(?:=\S*)?$")
CALL = re.compile(r"^([a-z_]\w*)\(\)$")
CLASS = re.compile(r"^[A-Z][a-z]+(?:[A-Z][a-z]+)+$")  # CamelCase: a class of ours, or peewee's
HTTP_WORDS = {"HttpOnly"}  # CamelCase, and a cookie's attribute


def project_modules():
    """{name: path} of the project's own modules: the top level, sandbox/, tools/."""
    found = {path.stem: path for path in ROOT.glob("*.py")}
    found |= {"sandbox": ROOT / "sandbox", "tools": ROOT / "tools"}
    return found


def defined_names():
    """Every function, class and test defined anywhere in the project's Python."""
    names = set()
    for path in [*ROOT.glob("*.py"), *ROOT.glob("sandbox/**/*.py"), *ROOT.glob("tools/*.py")]:
        names |= {
            node.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.ClassDef)
        }
    for path in (ROOT / "tests").glob("*.py"):
        names |= {
            node.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.ClassDef)
        }
    return names


def make_targets():
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][\w-]*):", text, re.M))


def classes():
    """{class name: the class} of the project's modules that import cleanly here."""
    found = {}
    for name in [*project_modules(), "sandbox.fitbit_authorization", "sandbox.google"]:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, type) and value.__module__.split(".")[0] in project_modules():
                found.setdefault(value.__name__, value)
    for sub in (ROOT / "sandbox").glob("*.py"):
        if sub.stem != "__main__":
            module = importlib.import_module(f"sandbox.{sub.stem}")
            for value in vars(module).values():
                if isinstance(value, type):
                    found.setdefault(value.__name__, value)
    return found


def spans(page):
    """The code spans of a page's prose, and the lines of its shell blocks."""
    text = page.read_text()
    prose = FENCE.sub("", text)
    return SPAN.findall(prose)


def unknown(span, modules, names, targets, known_classes, settings_text):
    """Why `span` names something that is not there; None if it is there, or names nothing
    of the project's."""
    words = span.split()
    if "make" in words:
        after = words[words.index("make") + 1 :]
        wanted = [w for w in after if "=" not in w and not w.startswith("-")][:1]
        missing = [w for w in wanted if w not in targets]
        return f"make target {missing[0]}" if missing else None
    if words[:1] in (["python"], [".venv/bin/python"]) and len(words) > 1:
        if words[1] == "-m":
            return None if words[2].split(".")[0] in modules else f"module {words[2]}"
        return None if (ROOT / words[1]).exists() else f"file {words[1]}"
    if len(words) > 1:
        return None
    if "<" in span or "*" in span or span.startswith(("/", "http", ".")):
        return None
    if PATH.match(span):
        return None if (ROOT / span).exists() else f"file {span}"
    if span.startswith("test_"):
        return None if span.rstrip("()") in names else f"test {span}"
    setting = SETTING.match(span)
    if setting:
        return None if setting.group(1) in settings_text else f"setting {setting.group(1)}"
    call = CALL.match(span)
    if call:
        return None if call.group(1) in names else f"function {span}"
    if CLASS.match(span) and span not in HTTP_WORDS:
        return None if span in known_classes or hasattr(peewee, span) else f"class {span}"
    dotted = DOTTED.match(span)
    if not dotted:
        return None
    head, rest = dotted.group(1), re.split(r"[.:]", dotted.group(2))[1:]
    if head in modules:
        try:
            value = importlib.import_module(head)
        except ImportError:
            return f"module {head}"
        for part in rest:
            if not hasattr(value, part):
                try:
                    value = importlib.import_module(f"{value.__name__}.{part}")
                    continue
                except (ImportError, AttributeError):
                    return f"{span}: no {part}"
            value = getattr(value, part)
        return None
    if head in known_classes:
        value = known_classes[head]
        for part in rest:
            if not hasattr(value, part):
                return f"{span}: no {part}"
            value = getattr(value, part)
        return None
    return None  # another's name (google.rpc.Status, dataPoints.list): not ours to check


def settings_text():
    """Where the settings the app and its tools read are named."""
    paths = [*ROOT.glob("*.py"), *ROOT.glob("sandbox/**/*.py"), *ROOT.glob("tools/*.py")]
    paths += [ROOT / "Makefile", *(ROOT / "tests").glob("test_lifecycle.py")]
    return "\n".join(path.read_text() for path in paths)


def test_every_name_the_docs_give_exists():
    modules, names, targets = project_modules(), defined_names(), make_targets()
    known, settings = classes(), settings_text()
    missing = [
        f"{page.relative_to(ROOT)}: `{span}` ({why})"
        for page in PAGES
        for span in spans(page)
        if (why := unknown(span, modules, names, targets, known, settings))
    ]
    assert missing == []


def test_every_page_the_docs_link_to_is_there():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http") and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


# --- The commands, run as written --------------------------------------------------------


def blocks(name):
    """The shell blocks marked `<!-- runs: name -->`, each as its list of commands (a line
    continued with a backslash, or a here-document, is one command), with its comments."""
    found = []
    for page in PAGES:
        for marked, body in RUNS.findall(page.read_text()):
            if marked == name:
                found.append(body)
    assert found, f"no block marked runs: {name}"
    return found


def commands(block):
    """A block's commands, one per line, without what follows a `  # ` comment."""
    return [re.split(r"\s+# ", line)[0].strip() for line in block.splitlines() if line.strip()]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def copy(tmp_path):
    """The project as a newcomer's clone has it, with this checkout's installed virtualenv:
    the files git knows, their times kept, so that make sees nothing to install."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for name in listed:
        if (ROOT / name).exists():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    return tmp_path


class Shell:
    """Commands run in the copy as a reader's shell runs them, `ports` swapped for free ones
    (4000 for the app, 4001 for a stand-in run on its own)."""

    def __init__(self, folder):
        self.folder = folder
        self.ports = {"4000": str(free_port()), "4001": str(free_port())}
        mine = ("FITBIT_", "GOOGLE_", "PROVIDER", "SECRET_KEY", "TOKEN_", "DATABASE_URL", "MAKE")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(mine)}
        self.env["PORT"], self.env["SANDBOX_PORT"] = self.ports["4000"], self.ports["4001"]
        self.env["PYTHONUNBUFFERED"] = "1"  # its lines as a terminal shows them, at once
        self.env["FITBIT_REDIRECT_URI"] = self.url("/auth/callback")
        self.env["GOOGLE_REDIRECT_URI"] = self.url("/auth/callback")

    def url(self, path="", port="4000"):
        return f"http://localhost:{self.ports[port]}{path}"

    def moved(self, command):
        for old, new in self.ports.items():
            command = command.replace(f"localhost:{old}", f"localhost:{new}")
        return command

    def run(self, command):
        done = subprocess.run(
            ["bash", "-c", self.moved(command)],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    @contextmanager
    def serving(self, command, port="4000"):
        """A command that serves (make run, make sandbox), until the block ends; yields a
        function that says what it has printed so far."""
        path = self.folder / f"served-{port}.log"
        log = open(path, "w")  # noqa: SIM115 (closed below)
        server = subprocess.Popen(
            ["bash", "-c", self.moved(command)],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            for _ in range(400):
                try:
                    requests.get(self.url("/", port), timeout=1)
                    break
                except requests.ConnectionError:
                    assert server.poll() is None, path.read_text()
                    time.sleep(0.05)
            yield path.read_text
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(20)
            log.close()
            assert "Traceback" not in path.read_text(), path.read_text()


def signed_in(shell, session=None):
    """Through the app and the consent page it leads to, as the first person offered: the
    page the browser lands on."""
    browser = session or requests.Session()
    consent = browser.get(shell.url("/auth"), timeout=30)
    assert "would like to access your data" in consent.text, consent.text[-500:]
    request_id = re.search(r'name="request_id" value="([^"]+)"', consent.text).group(1)
    user = re.search(r'name="user_id" value="([^"]+)"', consent.text).group(1)
    scopes = re.findall(r'name="scope" value="([^"]+)"', consent.text)
    form = {"request_id": request_id, "user_id": user, "decision": "allow", "scope": scopes}
    page = browser.post(consent.url.split("?")[0], data=form, timeout=30)
    assert page.status_code == 200 and "Hello, " in page.text, page.text[-500:]
    return browser, page


def test_make_run_reaches_the_signed_in_page_in_each_dialect(copy):
    """The README's Run it: each command serves, and a sign-in there is greeted by name."""
    [block] = blocks("run")
    ran = commands(block)
    assert [command.split()[-2:] for command in ran] == [["make", "run"]] * 2
    for command in ran:
        shell = Shell(copy)
        with shell.serving(command):
            browser, page = signed_in(shell)
            trace = browser.get(shell.url("/trace"), timeout=30)
            assert "POST" in trace.text and "***" in trace.text  # the exchanges, masked
        dialect = "google" if "PROVIDER=google" in command else "fitbit"
        assert ("Google Health" in page.text) == (dialect == "google")


def env_lines(printed):
    """The KEY=value lines a stand-in prints for .env, as a reader copies them."""
    return [line.strip() for line in printed.splitlines() if re.match(r"^\s+[A-Z_]+=", line)]


def test_a_stand_in_on_its_own_is_met_with_the_lines_it_prints_in_env(copy):
    """providers.md: `make sandbox`, its lines pasted into .env, then `make run`."""
    for block in blocks("stand-in-alone"):
        shell = Shell(copy)
        (copy / ".env").unlink(missing_ok=True)
        first, then = commands(block)
        with shell.serving(first, port="4001") as printed:
            lines = env_lines(printed())
            ids = ("FITBIT_CLIENT_ID=", "GOOGLE_CLIENT_ID=")
            assert any(line.startswith(ids) for line in lines), lines
            (copy / ".env").write_text("\n".join(lines) + "\n")
            with shell.serving(then):
                signed_in(shell)
        (copy / ".env.mk").unlink(missing_ok=True)


def test_the_webhook_registration_goes_through_at_the_stand_in(copy):
    """webhooks.md's block for the stand-in, as written, with the stand-in and the app
    running as providers.md has them."""
    [block] = blocks("webhook-registration")
    shell = Shell(copy)
    with shell.serving("PROVIDER=google make sandbox", port="4001") as printed:
        (copy / ".env").write_text("\n".join(env_lines(printed())) + "\n")
        with shell.serving("make run"):
            answer = shell.run(block)
    assert '"done": true' in answer and shell.url("/webhooks/google") in answer, answer


def test_make_reencrypt_seals_the_rows_again_and_the_app_opens_them(copy):
    """operations.md's rotation with one process, after a sign-in in sandbox mode: every
    row is sealed again, and the app, given the new key alone, still knows the browser."""
    [block] = blocks("reencrypt")
    shell = Shell(copy)
    with shell.serving("make run"):
        browser, _ = signed_in(shell)
    said = shell.run(block)
    assert re.search(r"^[1-9]\d* rows sealed again with key \w{8}", said, re.M), said
    with shell.serving("make run"):
        page = browser.get(shell.url("/"), timeout=30)
    assert "Hello, " in page.text and 'action="/auth/revoke"' in page.text


@pytest.mark.parametrize(
    "command",
    [
        ["fitbit_oauth_app.py"],
        ["encryption.py"],
        ["-m", "sandbox"],
        ["-m", "tools.reencrypt"],
        ["-m", "tools.bench"],
    ],
    ids=lambda command: command[-1],
)
def test_every_command_the_docs_name_says_how_it_is_used(command):
    """`--help` prints usage and does nothing else: no key printed, no database made."""
    before = set(ROOT.iterdir())
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and done.stdout.startswith("usage: "), done.stdout + done.stderr
    assert set(ROOT.iterdir()) == before
