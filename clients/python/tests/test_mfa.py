"""request.auth["amr"], the mfa_required decorator and the MfaRequired DRF permission,
against accounts enrolled in TOTP at a real tollgate and its two-step login."""

import jwt
import pytest
from django.test import Client, override_settings

from django_tollgate.conf import reset_verifier

from conftest import PASSWORD, totp

MFA_VIEWS = ["/mfa/drf/", "/mfa/plain/"]
PLAIN_CHALLENGE = 'Bearer realm="tollgate"'
INVALID_CHALLENGE = 'Bearer realm="tollgate", error="invalid_token"'
MFA_REFUSAL = {"error": "this needs a session signed in with a second factor", "code": "mfa_required"}


def get(path, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return Client().get(path, **headers)


def amr(token):
    return jwt.decode(token, options={"verify_signature": False}).get("amr")


def assert_mfa_refused(response):
    assert response.status_code == 403, response.content
    assert response.json() == MFA_REFUSAL
    assert not response.has_header("WWW-Authenticate")


@pytest.fixture
def enrolled(tollgate):
    """A user with TOTP on: (signup token response, i.e. a password-only session; secret,
    confirming step, recovery codes)."""
    session = tollgate.signup()
    return session, *tollgate.enrol_totp(session)


@pytest.mark.parametrize("path", MFA_VIEWS)
def test_a_two_factor_session_passes_and_a_password_only_one_gets_403(tollgate, verifier, enrolled, path):
    session, _secret, _step, codes = enrolled
    username = session["user"]["username"]
    password_only = session["access_token"]
    assert amr(password_only) == ["pwd"]

    two_factors = tollgate.login_mfa(username, codes[0])
    token = two_factors["access_token"]
    assert amr(token) == ["mfa", "otp", "pwd"]
    response = get(path, token)
    assert response.status_code == 200, response.content
    assert response.json() == {"username": username, "sub": session["user"]["id"],
                               "amr": ["mfa", "otp", "pwd"], "is_staff": False, "is_superuser": False}

    # The same user's password-only session is valid, and refused here alone.
    assert_mfa_refused(get(path, password_only))
    plain = path.replace("/mfa", "")
    response = get(plain, password_only)
    assert response.status_code == 200, response.content
    assert response.json()["amr"] == ["pwd"]

    # A refresh keeps the session's amr.
    status, refreshed = tollgate.call("POST", "/auth/refresh", {"refresh_token": two_factors["refresh_token"]})
    assert status == 200, refreshed
    assert amr(refreshed["access_token"]) == ["mfa", "otp", "pwd"]
    assert get(path, refreshed["access_token"]).status_code == 200


def test_the_next_steps_totp_code_signs_in_with_mfa_and_the_confirming_one_is_refused(tollgate, verifier, enrolled):
    session, secret, step, _codes = enrolled
    username = session["user"]["username"]
    # The code that confirmed the factor was accepted once: the login refuses it.
    status, first = tollgate.call("POST", "/auth/login", {"username": username, "password": PASSWORD})
    assert status == 200 and first["mfa_required"] is True, first
    status, body = tollgate.call("POST", "/auth/login/mfa",
                                 {"mfa_token": first["mfa_token"], "code": totp(secret, step)})
    assert status == 401 and body["code"] == "invalid_mfa_code", body
    # The same mfa_token takes a right code after a wrong one (five wrong kill it).
    status, tokens = tollgate.call("POST", "/auth/login/mfa",
                                   {"mfa_token": first["mfa_token"], "code": totp(secret, step + 1)})
    assert status == 200, tokens
    assert amr(tokens["access_token"]) == ["mfa", "otp", "pwd"]
    for path in MFA_VIEWS:
        assert get(path, tokens["access_token"]).status_code == 200


@pytest.mark.parametrize("path", MFA_VIEWS)
def test_an_account_without_a_factor_gets_403_and_no_token_401(tollgate, verifier, path):
    token = tollgate.signup()["access_token"]
    assert_mfa_refused(get(path, token))
    response = get(path)
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "missing_token"
    assert response["WWW-Authenticate"] == PLAIN_CHALLENGE
    response = get(path, token + "x")
    assert response.status_code == 401, response.content
    assert response.json()["code"] == "invalid_token"
    assert response["WWW-Authenticate"] == INVALID_CHALLENGE


@pytest.mark.parametrize("path", MFA_VIEWS)
def test_a_two_factor_token_of_a_logged_out_session_is_refused_with_401(tollgate, verifier, enrolled, path):
    session, _secret, _step, codes = enrolled
    token = tollgate.login_mfa(session["user"]["username"], codes[1])["access_token"]
    assert get(path, token).status_code == 200
    status, _ = tollgate.call("POST", "/auth/logout", token=token)
    assert status == 204
    verifier.revocations.poll_once()
    response = get(path, token)
    assert response.status_code == 401, response.content
    assert response.json() == {"error": "token revoked", "code": "invalid_token"}


def test_the_decorator_verifies_by_itself_without_the_middleware(tollgate, verifier, enrolled):
    session, _secret, _step, codes = enrolled
    token = tollgate.login_mfa(session["user"]["username"], codes[2])["access_token"]
    with override_settings(MIDDLEWARE=[]):
        reset_verifier(verifier)
        response = get("/mfa/plain/", token)
        assert response.status_code == 200, response.content
        assert response.json()["amr"] == ["mfa", "otp", "pwd"]
        assert_mfa_refused(get("/mfa/plain/", session["access_token"]))
        response = get("/mfa/plain/")
        assert response.status_code == 401 and response.json()["code"] == "missing_token"
