"""Verification of tollgate access tokens: JWKS by kid, pinned algorithm, claims, revocations.

Nothing here depends on Django, so that it can be tested (and used) on its own; the
settings come in as a plain dict (see `conf.py`).
"""

import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import jwt

log = logging.getLogger("django_tollgate")

ACCESS_TOKEN_TYPES = ("at+jwt", "application/at+jwt")
MAX_TOKEN_LEN = 8192
HTTP_TIMEOUT_SECS = 5


class TokenError(Exception):
    """A token that must be refused; `code` is tollgate's error code, the message is safe to show."""

    def __init__(self, message, code="invalid_token"):
        super().__init__(message)
        self.code = code


class Unavailable(Exception):
    """The keys could not be fetched: no token can be checked right now."""


def fetch_json(url, bearer=None):
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if bearer:
        request.add_header("Authorization", f"Bearer {bearer}")
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECS) as response:
        return json.load(response)


class KeySet:
    """The JWKS, cached by kid. An unknown kid fetches the set again (tollgate rotated its
    keys), but at most once per cooldown, so that tokens with made-up kids cannot make
    every request a fetch."""

    def __init__(self, url, algorithms, cooldown_secs, clock):
        self.url = url
        self.algorithms = set(algorithms)
        self.cooldown_secs = cooldown_secs
        self.clock = clock
        self.keys = {}
        self.fetched_at = None
        self.fetches = 0
        self.lock = threading.Lock()

    def get(self, kid):
        key = self.keys.get(kid)
        if key is not None:
            return key
        with self.lock:
            if kid not in self.keys and self._may_fetch():
                self._fetch()
            return self.keys.get(kid)

    def _may_fetch(self):
        return self.fetched_at is None or self.clock() - self.fetched_at >= self.cooldown_secs

    def _fetch(self):
        self.fetched_at = self.clock()
        self.fetches += 1
        try:
            document = fetch_json(self.url)
        except (OSError, ValueError) as e:
            if not self.keys:
                raise Unavailable(f"cannot fetch the JWKS from {self.url}: {e}") from e
            log.warning("keeping the cached JWKS: cannot fetch %s: %s", self.url, e)
            return
        keys = {}
        for jwk in document.get("keys", []) if isinstance(document, dict) else []:
            kid, alg = (jwk.get("kid"), jwk.get("alg")) if isinstance(jwk, dict) else (None, None)
            # The algorithm comes from the key, never from a token's header.
            if not isinstance(kid, str) or alg not in self.algorithms:
                log.warning("ignoring a JWKS key without kid or with an algorithm not in ALGORITHMS")
                continue
            try:
                keys[kid] = jwt.PyJWK(jwk, algorithm=alg)
            except jwt.PyJWTError as e:
                log.warning("ignoring JWKS key %s: %s", kid, e)
        self.keys = keys


def issued_at_ms(claims):
    """When a token was issued, in unix milliseconds: the timestamp of its jti, a UUIDv7
    (RFC 9562) that tollgate stamps with the exact issue time; for a token whose jti is not
    one (from a tollgate that cut revocations at whole seconds), its iat."""
    try:
        jti = uuid.UUID(claims["jti"])
    except ValueError:
        jti = None
    if jti is not None and jti.variant == uuid.RFC_4122 and jti.version == 7:
        return jti.int >> 80
    return claims["iat"] * 1000


class Revocations:
    """tollgate's revocation feed: the time before which tokens are dead, in unix
    milliseconds, for each (sub, None), every token of the user, and for each (sub, sid),
    the tokens of that session alone (a token without sid meets only the former). An
    entry's exact not_before_ms is compared with a token's exact issue time
    (`issued_at_ms`); an entry from a tollgate without it counts from the start of its
    second, not_before, which tollgate rounds up from the exact time. Where only iat is
    known, the comparison is in effect `iat < not_before`, which can refuse a token
    issued just after a revocation in the same second."""

    def __init__(self, url, feed_token, poll_secs):
        self.url = url
        self.feed_token = feed_token
        self.poll_secs = poll_secs
        self.not_before_ms = {}
        self.since = 0
        self.polled = threading.Event()
        self.stopped = threading.Event()
        self.thread = None
        self.lock = threading.Lock()

    def start(self):
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="tollgate-revocations", daemon=True)
                self.thread.start()

    def stop(self):
        self.stopped.set()

    def _run(self):
        while not self.stopped.is_set():
            try:
                self.poll_once()
            except (OSError, ValueError, TokenError) as e:
                # Access tokens stay checkable without the feed; only revocations lag.
                log.warning("revocation feed %s failed: %s", self.url, e)
            self.stopped.wait(self.poll_secs)

    def poll_once(self):
        url = f"{self.url}{'&' if '?' in self.url else '?'}since={self.since}"
        try:
            document = fetch_json(url, bearer=self.feed_token)
        except urllib.error.HTTPError as e:
            raise TokenError(f"revocation feed answered {e.code}") from e
        entries, now = document.get("revocations"), document.get("now")
        if not isinstance(entries, list) or not is_int(now):
            raise ValueError("revocation feed answered without revocations and now")
        for entry in entries:
            sub, sid = entry.get("sub"), entry.get("sid")
            not_before, exact = entry.get("not_before"), entry.get("not_before_ms")
            # A malformed sid is skipped, not read as the whole user's entry.
            if not is_str(sub) or not (sid is None or is_str(sid)) or not is_int(not_before):
                continue
            at = exact if is_int(exact) else not_before * 1000
            self.not_before_ms[sub, sid] = max(at, self.not_before_ms.get((sub, sid), at))
        self.since = now
        self.polled.set()

    def revoked(self, claims):
        issued = issued_at_ms(claims)
        for sid in (None, claims.get("sid")):
            not_before = self.not_before_ms.get((claims["sub"], sid))
            if not_before is not None and issued < not_before:
                return True
        return False


def is_str(value):
    return isinstance(value, str)


def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def is_str_list(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def is_uuid(value):
    if not is_str(value):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


# Each claim tollgate puts into an access token, with the JSON type it must have.
CLAIM_TYPES = {
    "sub": (is_str, "a string"),
    "username": (is_str, "a string"),
    "iss": (is_str, "a string"),
    "jti": (is_str, "a string"),
    "iat": (is_int, "an integer"),
    "nbf": (is_int, "an integer"),
    "exp": (is_int, "an integer"),
    "aud": (lambda v: isinstance(v, str) or is_str_list(v), "a string or a list of strings"),
    "roles": (is_str_list, "a list of strings"),
}


def has_mfa(claims):
    """Whether verified claims are of a session signed in with a second factor: "mfa" in
    their amr (after a password and a TOTP or recovery code, or a passkey that verified the
    user). False for anything that is not such claims (no token, another auth's object)."""
    return isinstance(claims, dict) and isinstance(claims.get("amr"), list) and "mfa" in claims["amr"]


class Verifier:
    def __init__(self, config, clock=time.time):
        self.config = config
        self.clock = clock
        self.keys = KeySet(config["JWKS_URL"], config["ALGORITHMS"], config["JWKS_COOLDOWN_SECS"], self.now)
        self.revocations = None
        if config["REVOCATIONS_URL"]:
            self.revocations = Revocations(
                config["REVOCATIONS_URL"], config["REVOCATION_FEED_TOKEN"], config["POLL_SECS"]
            )

    def now(self):
        return self.clock()

    def close(self):
        if self.revocations is not None:
            self.revocations.stop()

    def verify(self, token):
        """The claims of a valid, unrevoked access token; else TokenError (or Unavailable)."""
        if self.revocations is not None:
            self.revocations.start()
        if not token or len(token) > MAX_TOKEN_LEN:
            raise TokenError("malformed token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise TokenError("malformed token") from None
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in ACCESS_TOKEN_TYPES:
            raise TokenError("not an access token (typ must be at+jwt)")
        kid = header.get("kid")
        key = self.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown signing key")
        if header.get("alg") != key.algorithm_name:
            raise TokenError("token algorithm does not match its key")
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[key.algorithm_name],
                audience=self.config["AUDIENCE"],
                issuer=self.config["ISSUER"],
                # Times are checked below against the injectable clock.
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False, "verify_sub": False,
                         "verify_jti": False},
            )
        except jwt.MissingRequiredClaimError as e:
            raise TokenError(f"token lacks the {e.claim} claim") from None
        except jwt.InvalidAudienceError:
            raise TokenError("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("wrong issuer") from None
        except jwt.PyJWTError:
            raise TokenError("invalid token signature") from None
        self.check_claims(claims)
        if self.revocations is not None and self.revocations.revoked(claims):
            raise TokenError("token revoked")
        return claims

    def check_claims(self, claims):
        for name, (check, kind) in CLAIM_TYPES.items():
            if name not in claims:
                raise TokenError(f"token lacks the {name} claim")
            if not check(claims[name]):
                raise TokenError(f"claim {name} is not {kind}")
        if not is_uuid(claims["sub"]):
            raise TokenError("claim sub is not a uuid")
        # The session's id; tokens of a tollgate without sessions have none.
        if claims.get("sid") is not None and not is_uuid(claims["sid"]):
            raise TokenError("claim sid is not a uuid")
        # How the session was authenticated (RFC 8176): ["pwd"], or ["mfa", "otp", "pwd"]
        # after a second factor. Tokens of a tollgate before it have none: [] here, so that
        # request.auth["amr"] is always a list.
        claims.setdefault("amr", [])
        if not is_str_list(claims["amr"]):
            raise TokenError("claim amr is not a list of strings")
        now, leeway = self.now(), self.config["LEEWAY_SECS"]
        if now >= claims["exp"] + leeway:
            raise TokenError("token expired")
        if now + leeway < claims["nbf"]:
            raise TokenError("token not yet valid")
