"""Test set-up: a real tollgate process for the session, the test Django project, a clock."""

import base64
import hashlib
import hmac
import json
import os
import pathlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid

import pytest

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[2]
FEED_TOKEN = "feed-token-for-the-python-tests"
PASSWORD = "correct horse battery staple"


def tollgate_binary():
    """TOLLGATE_BIN, else the debug binary under CARGO_TARGET_DIR (or the repo's target/)."""
    given = os.environ.get("TOLLGATE_BIN")
    if given:
        path = pathlib.Path(given).resolve()
        if not path.is_file():
            pytest.exit(f"TOLLGATE_BIN={path} does not exist", returncode=2)
        return path
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not target.is_absolute():
        target = REPO / target
    path = target / "debug" / "tollgate"
    if not path.is_file():
        pytest.exit(f"{path} is missing: run `cargo build --bin tollgate` or set TOLLGATE_BIN", returncode=2)
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKDIR = pathlib.Path(tempfile.mkdtemp(prefix="tollgate-py-"))
PORT = free_port()
URL = f"http://127.0.0.1:{PORT}"
os.environ.update(
    TOLLGATE_TEST_URL=URL,
    TOLLGATE_TEST_DB=str(WORKDIR / "django.sqlite3"),
    TOLLGATE_TEST_FEED_TOKEN=FEED_TOKEN,
    DJANGO_SETTINGS_MODULE="testproject.settings",
)
sys.path.insert(0, str(HERE))

import django  # noqa: E402

django.setup()


class Tollgate:
    def __init__(self):
        self.dir = WORKDIR / "tollgate"
        self.dir.mkdir()
        self.stderr = open(WORKDIR / "tollgate.log", "w+b")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "BIND_ADDR": f"127.0.0.1:{PORT}",
            "DATABASE_URL": f"sqlite://{self.dir}/t.db",
            "JWT_KEYS_DIR": f"{self.dir}/keys",
            "AUTH_RATE_LIMIT_PER_MIN": "0",
            "ARGON2_MEMORY_KIB": "1024",
            "ARGON2_ITERATIONS": "1",
            "REVOCATION_FEED_TOKEN": FEED_TOKEN,
            # A user may be logged in twice, so that one session can end alone.
            "SESSIONS_PER_USER": "2",
            "RUST_LOG": "warn",
        }
        self.env = env
        self.process = subprocess.Popen([tollgate_binary()], cwd=self.dir, env=env,
                                        stdout=subprocess.DEVNULL, stderr=self.stderr)
        deadline = time.monotonic() + 60
        while not self.ready():
            if self.process.poll() is not None:
                raise RuntimeError(f"tollgate exited during start-up:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"tollgate not ready within 60 s:\n{self.log()}")
            time.sleep(0.1)  # waiting for the process to listen, not for time to pass

    def ready(self):
        try:
            with urllib.request.urlopen(f"{URL}/readyz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def command(self, *args):
        """Runs `tollgate ARGS` on the server's database and keys; the completed process."""
        return subprocess.run([tollgate_binary(), *args], cwd=self.dir, env=self.env,
                              capture_output=True, text=True, timeout=120)

    def password_hash(self, username):
        """The stored hash, read from tollgate's own database."""
        import sqlite3

        with sqlite3.connect(self.dir / "t.db") as db:
            row = db.execute("SELECT password_hash FROM users WHERE username = ?", (username,)).fetchone()
        return row[0]

    def call(self, method, path, body=None, token=None):
        """(status, JSON body or None) of a request to tollgate."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{URL}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        # A bound on a hung server, not a measure: a login against an imported Django hash
        # (PBKDF2, a million iterations, and the failure floor after it) on a debug build
        # of a loaded machine has taken more than 10 s.
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def signup(self, username=None):
        """A new user's token response."""
        username = username or f"u{uuid.uuid4().hex[:12]}"
        status, body = self.call("POST", "/auth/signup", {"username": username, "password": PASSWORD})
        assert status == 201, body
        return body

    def login(self, username):
        """A token response of a new session of an existing user."""
        status, body = self.call("POST", "/auth/login", {"username": username, "password": PASSWORD})
        assert status == 200, body
        return body

    def enrol_totp(self, session):
        """Sets up and confirms TOTP for the signed-up `session` (a token response); returns
        (base32 secret, the time step whose code confirmed it, the ten recovery codes). The
        server refuses that step's code from then on (and any earlier one); the next step's
        code, within the one step of skew, is accepted."""
        token = session["access_token"]
        status, body = self.call("POST", "/auth/mfa/totp/setup", {"current_password": PASSWORD}, token=token)
        assert status == 200, body
        secret = body["secret"]
        assert f"secret={secret}" in body["otpauth_uri"], body
        step = totp_step()
        status, body = self.call("POST", "/auth/mfa/totp/confirm", {"code": totp(secret, step)}, token=token)
        assert status == 200, body
        codes = body["recovery_codes"]
        assert len(set(codes)) == 10, codes
        return secret, step, codes

    def login_mfa(self, username, code):
        """The token response of the two-step login of an account with a second factor."""
        status, first = self.call("POST", "/auth/login", {"username": username, "password": PASSWORD})
        assert status == 200, first
        assert first["mfa_required"] is True and "access_token" not in first, first
        assert set(first["methods"]) == {"totp", "recovery_code"}, first
        status, body = self.call("POST", "/auth/login/mfa", {"mfa_token": first["mfa_token"], "code": code})
        assert status == 200, body
        return body

    def private_key(self):
        """tollgate's own Ed25519 signing key, to sign tokens that only a wrong claim makes invalid."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pems = [p.read_bytes() for p in (self.dir / "keys").rglob("*") if p.is_file()]
        pems = [pem for pem in pems if b"BEGIN PRIVATE KEY" in pem]
        assert pems, f"no private key under {self.dir / 'keys'}"
        der = base64.b64decode(b"".join(pems[0].splitlines()[1:-1]))
        # tollgate writes PKCS#8 v2 (with the public key), which `cryptography` does not
        # load; the 32-byte seed follows the OCTET STRING headers 04 22 04 20.
        start = der.index(b"\x04\x22\x04\x20") + 4
        return Ed25519PrivateKey.from_private_bytes(der[start:start + 32])


def totp_step(at=None):
    """The RFC 6238 time step (30 s) of `at`, by default now."""
    return int(time.time() if at is None else at) // 30


def totp(secret, step):
    """The 6-digit RFC 6238 code (HMAC-SHA-1, RFC 4226 truncation) of a base32 secret at a step."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    return f"{(int.from_bytes(digest[offset:offset + 4], 'big') & 0x7FFFFFFF) % 1_000_000:06d}"


@pytest.fixture(scope="session", autouse=True)
def django_db():
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    yield
    shutil.rmtree(WORKDIR, ignore_errors=True)


@pytest.fixture(scope="session")
def tollgate():
    server = Tollgate()
    yield server
    server.stop()


class Clock:
    """The verifier's time, moved by the tests instead of waiting."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def advance(self, secs):
        self.now += secs


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def verifier(clock):
    """The project's verifier, built from the current settings with the test clock."""
    from django_tollgate.conf import reset_verifier, tollgate_settings
    from django_tollgate.verifier import Verifier

    installed = Verifier(tollgate_settings(), clock=clock)
    reset_verifier(installed)
    yield installed
    reset_verifier()
