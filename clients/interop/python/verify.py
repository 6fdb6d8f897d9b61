"""Python: PyJWT's PyJWKClient fetches tollgate's JWKS and verifies an access token, as a
Python resource server would; then the token is introspected (RFC 7662) with the standard
library's HTTP client.

Environment: TOLLGATE_URL (= JWT_ISSUER), AUDIENCE, ALG, ACCESS_TOKEN, FEED_TOKEN.
Prints one "PASS name" or "FAIL name: why" line per check; exits 1 on any failure.
"""

import json
import os
import sys
import urllib.parse
import urllib.request

import jwt

URL = os.environ["TOLLGATE_URL"]
AUDIENCE = os.environ["AUDIENCE"]
ALG = os.environ["ALG"]
TOKEN = os.environ["ACCESS_TOKEN"]
FEED_TOKEN = os.environ["FEED_TOKEN"]

failures = 0


def check(name, fn):
    global failures
    try:
        fn()
        print(f"PASS {name}", flush=True)
    except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
        failures += 1
        print(f"FAIL {name}: {type(e).__name__}: {e}", flush=True)


def jwks_uri():
    with urllib.request.urlopen(f"{URL}/.well-known/openid-configuration", timeout=10) as response:
        return json.load(response)["jwks_uri"]


def verify():
    client = jwt.PyJWKClient(jwks_uri())
    key = client.get_signing_key_from_jwt(TOKEN)
    claims = jwt.decode(
        TOKEN,
        key,
        algorithms=[ALG],
        audience=AUDIENCE,
        issuer=URL,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    assert jwt.get_unverified_header(TOKEN)["typ"] == "at+jwt"
    assert claims["username"] == "interop", claims


def rejects_tampering():
    client = jwt.PyJWKClient(jwks_uri())
    key = client.get_signing_key_from_jwt(TOKEN)
    header, _, signature = TOKEN.split(".")
    payload = jwt.utils.base64url_encode(json.dumps({"sub": "someone-else"}).encode()).decode()
    try:
        jwt.decode(f"{header}.{payload}.{signature}", key, algorithms=[ALG], audience=AUDIENCE)
    except jwt.InvalidSignatureError:
        return
    raise AssertionError("a tampered token verified")


def introspect():
    request = urllib.request.Request(
        f"{URL}/auth/introspect",
        data=urllib.parse.urlencode({"token": TOKEN}).encode(),
        headers={"Authorization": f"Bearer {FEED_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.load(response)
    assert body["active"] is True and body["username"] == "interop", body


check("PyJWT PyJWKClient + jwt.decode", verify)
check("PyJWT rejects a tampered token", rejects_tampering)
check("introspection with urllib", introspect)
sys.exit(1 if failures else 0)
