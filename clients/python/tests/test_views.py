"""The test project's DRF view and plain view against tokens from a real tollgate."""

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

from django_tollgate.conf import reset_verifier, tollgate_settings
from django_tollgate.verifier import Verifier

VIEWS = ["/drf/", "/plain/"]
PLAIN_CHALLENGE = 'Bearer realm="tollgate"'
INVALID_CHALLENGE = 'Bearer realm="tollgate", error="invalid_token"'


def get(path, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().get(path, **headers)


def assert_refused(response, code="invalid_token", challenge=INVALID_CHALLENGE, error=None):
    assert response.status_code == 401, response.content
    body = response.json()
    assert set(body) == {"error", "code"}, body
    assert body["code"] == code
    if error is not None:
        assert body["error"] == error
    assert response["WWW-Authenticate"] == challenge
    return body


def tollgate_token_parts(token):
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    return header, claims


@pytest.mark.parametrize("path", VIEWS)
def test_a_tollgate_token_is_accepted_and_names_the_local_user(tollgate, verifier, path):
    session = tollgate.signup()
    response = get(path, session["access_token"])
    assert response.status_code == 200, response.content
    assert response.json() == {
        "username": session["user"]["username"],
        "sub": session["user"]["id"],
        "amr": ["pwd"],
        "is_staff": False,
        "is_superuser": False,
    }
    user = get_user_model().objects.get(username=session["user"]["username"])
    assert not user.has_usable_password()


def test_the_plain_view_verifies_by_itself_without_the_middleware(tollgate, verifier):
    session = tollgate.signup()
    with override_settings(MIDDLEWARE=[]):
        reset_verifier(verifier)
        assert get("/plain/", session["access_token"]).status_code == 200
        assert_refused(get("/plain/"), "missing_token", PLAIN_CHALLENGE)
        assert_refused(get("/plain/", session["access_token"] + "x"))


@pytest.mark.parametrize("path", VIEWS)
def test_a_request_without_a_token_is_refused_with_missing_token(verifier, path):
    assert_refused(get(path), "missing_token", PLAIN_CHALLENGE)


@pytest.mark.parametrize("path", VIEWS)
def test_a_non_bearer_authorization_header_is_refused(verifier, path):
    response = Client().get(path, HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz")
    assert_refused(response)


@pytest.mark.parametrize("path", VIEWS)
def test_a_token_signed_by_another_key_under_tollgates_kid_is_refused(tollgate, verifier, path):
    header, claims = tollgate_token_parts(tollgate.signup()["access_token"])
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=header)
    assert_refused(get(path, forged), error="invalid token signature")


@pytest.mark.parametrize("path", VIEWS)
def test_an_alg_swapped_token_is_refused(tollgate, verifier, path):
    # The classic attack: HS256 keyed with the public key that the JWKS publishes.
    header, claims = tollgate_token_parts(tollgate.signup()["access_token"])
    status, jwks = tollgate.call("GET", "/.well-known/jwks.json")
    public = base64.urlsafe_b64decode(jwks["keys"][0]["x"] + "==")
    body = ".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()
        for part in ({**header, "alg": "HS256"}, claims)
    )
    signature = hmac.new(public, body.encode(), hashlib.sha256).digest()
    swapped = body + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    assert_refused(get(path, swapped), error="token algorithm does not match its key")


@pytest.mark.parametrize("path", VIEWS)
def test_a_token_is_refused_once_expired_past_the_leeway(tollgate, verifier, clock, path):
    token = tollgate.signup()["access_token"]
    _, claims = tollgate_token_parts(token)
    clock.now = claims["exp"] + 29
    assert get(path, token).status_code == 200
    clock.now = claims["exp"] + 30
    assert_refused(get(path, token), error="token expired")


@pytest.mark.parametrize("setting, message", [("ISSUER", "wrong issuer"), ("AUDIENCE", "wrong audience")])
@pytest.mark.parametrize("path", VIEWS)
def test_a_token_for_another_issuer_or_audience_is_refused(tollgate, clock, setting, message, path):
    token = tollgate.signup()["access_token"]
    reset_verifier(Verifier({**tollgate_settings(), setting: "someone-else"}, clock=clock))
    try:
        assert_refused(get(path, token), error=message)
    finally:
        reset_verifier()


@pytest.mark.parametrize("typ", ["JWT", None])
@pytest.mark.parametrize("path", VIEWS)
def test_a_token_of_another_type_is_refused_even_with_tollgates_key(tollgate, verifier, path, typ):
    header, claims = tollgate_token_parts(tollgate.signup()["access_token"])
    # PyJWT leaves typ out when given None.
    token = jwt.encode(claims, tollgate.private_key(), algorithm="EdDSA",
                       headers={"kid": header["kid"], "typ": typ})
    assert jwt.get_unverified_header(token).get("typ") == typ
    assert_refused(get(path, token), error="not an access token (typ must be at+jwt)")
    # The same claims under the right typ pass: only typ made the difference.
    good = jwt.encode(claims, tollgate.private_key(), algorithm="EdDSA",
                      headers={"kid": header["kid"], "typ": "at+jwt"})
    assert get(path, good).status_code == 200


@pytest.mark.parametrize("path", VIEWS)
def test_a_logged_out_users_token_is_refused_after_the_next_poll(tollgate, verifier, path):
    session = tollgate.signup()
    token = session["access_token"]
    assert get(path, token).status_code == 200
    status, _ = tollgate.call("POST", "/auth/logout", token=token)
    assert status == 204
    verifier.revocations.poll_once()
    assert_refused(get(path, token), error="token revoked")
    # Logging in again gives a token issued after the revocation.
    fresh = tollgate.login(session["user"]["username"])
    verifier.revocations.poll_once()
    assert get(path, fresh["access_token"]).status_code == 200


@pytest.mark.parametrize("path", VIEWS)
def test_a_session_logged_out_alone_loses_its_token_and_the_other_session_keeps_its(tollgate, verifier, path):
    first = tollgate.signup()
    second = tollgate.login(first["user"]["username"])
    sids = {tollgate_token_parts(s["access_token"])[1].get("sid") for s in (first, second)}
    assert None not in sids and len(sids) == 2, sids
    status, _ = tollgate.call("POST", "/auth/logout", {"scope": "local"}, token=first["access_token"])
    assert status == 204
    verifier.revocations.poll_once()
    assert_refused(get(path, first["access_token"]), error="token revoked")
    assert get(path, second["access_token"]).status_code == 200
    # A global logout ends the other one too.
    status, _ = tollgate.call("POST", "/auth/logout", {"scope": "global"}, token=second["access_token"])
    assert status == 204
    verifier.revocations.poll_once()
    assert_refused(get(path, second["access_token"]), error="token revoked")


def test_the_revocation_feed_is_polled_in_the_background(tollgate, verifier):
    token = tollgate.signup()["access_token"]
    assert get("/plain/", token).status_code == 200  # starts the poller
    assert verifier.revocations.polled.wait(30), "the revocation poller never polled"
    assert verifier.revocations.since > 0
    assert verifier.revocations.thread.daemon


def test_an_unknown_kid_refetches_the_jwks_at_most_once_per_cooldown(tollgate, verifier, clock):
    header, claims = tollgate_token_parts(tollgate.signup()["access_token"])
    other = jwt.encode(claims, tollgate.private_key(), algorithm="EdDSA",
                       headers={"kid": "not-a-tollgate-kid", "typ": "at+jwt"})
    assert get("/plain/", tollgate.signup()["access_token"]).status_code == 200
    fetches = verifier.keys.fetches
    for _ in range(3):
        assert_refused(get("/plain/", other), error="unknown signing key")
    assert verifier.keys.fetches == fetches
    clock.advance(verifier.config["JWKS_COOLDOWN_SECS"])
    assert_refused(get("/plain/", other), error="unknown signing key")
    assert_refused(get("/plain/", other), error="unknown signing key")
    assert verifier.keys.fetches == fetches + 1
