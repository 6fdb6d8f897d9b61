"""The verifier and the user mapping against tokens signed here, with a JWKS and a
revocation feed served by the test (tollgate does not put `roles` in tokens yet)."""

import http.server
import json
import os
import threading
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model

from django_tollgate.conf import DEFAULTS
from django_tollgate.users import user_for_claims
from django_tollgate.verifier import TokenError, Unavailable, Verifier, has_mfa

ED_KEY = Ed25519PrivateKey.generate()
EC_KEY = generate_private_key(SECP256R1())


def public_jwk(private, kid, alg):
    algorithm = jwt.get_algorithm_by_name(alg)
    return {**algorithm.to_jwk(private.public_key(), as_dict=True), "kid": kid, "alg": alg, "use": "sig"}


class Issuer(http.server.ThreadingHTTPServer):
    """Serves /jwks and /revocations, counting JWKS fetches."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.jwks = {"keys": [public_jwk(ED_KEY, "ed", "EdDSA"), public_jwk(EC_KEY, "ec", "ES256")]}
        self.revocations = []
        self.feed_now = 1000
        self.jwks_fetches = 0
        self.feed_requests = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        if self.path == "/jwks":
            server.jwks_fetches += 1
            body = server.jwks
        elif self.path.startswith("/revocations"):
            server.feed_requests.append((self.path, self.headers.get("Authorization")))
            body = {"revocations": server.revocations, "now": server.feed_now}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def issuer():
    server = Issuer()
    yield server
    server.shutdown()
    server.server_close()


def config(issuer, **overrides):
    return {**DEFAULTS, "JWKS_URL": issuer.url("/jwks") if issuer else None, "ISSUER": "tollgate",
            "AUDIENCE": "tollgate", **overrides}


@pytest.fixture
def verifier(issuer, clock):
    made = Verifier(config(issuer), clock=clock)
    yield made
    made.close()


@pytest.fixture
def feed(issuer, clock):
    """A verifier that reads the issuer's revocation feed; the tests poll it themselves."""
    made = Verifier(config(issuer, REVOCATIONS_URL=issuer.url("/revocations"), REVOCATION_FEED_TOKEN="t" * 24),
                    clock=clock)
    yield made
    made.close()


def claims_at(now, **changes):
    claims = {
        "sub": str(uuid.uuid4()),
        "username": f"u{uuid.uuid4().hex[:10]}",
        "roles": [],
        "iss": "tollgate",
        "aud": "tollgate",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 900,
        "jti": uuid.uuid4().hex,
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not REMOVE}


REMOVE = object()


def uuid7(ms):
    """A UUIDv7 (RFC 9562) with this unix-millisecond timestamp, as tollgate's jti."""
    random = int.from_bytes(os.urandom(10), "big")
    rand_a, rand_b = random >> 68, random & ((1 << 62) - 1)
    return str(uuid.UUID(int=(ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b))


def claims_issued_at(ms, **changes):
    """The claims of a token issued at `ms` (unix milliseconds), as tollgate makes them."""
    return claims_at(ms // 1000, jti=uuid7(ms), **changes)


def sign(claims, key=ED_KEY, alg="EdDSA", kid="ed", typ="at+jwt"):
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": typ})


def refused(verifier, token, message):
    with pytest.raises(TokenError) as caught:
        verifier.verify(token)
    assert str(caught.value) == message
    assert caught.value.code == "invalid_token"


def test_a_valid_token_gives_its_claims_with_either_key(verifier, clock):
    claims = claims_at(clock.now, roles=["staff"], amr=["pwd"])
    assert verifier.verify(sign(claims)) == claims
    assert verifier.verify(sign(claims, EC_KEY, "ES256", "ec")) == claims
    in_a_session = {**claims, "sid": str(uuid.uuid4())}
    assert verifier.verify(sign(in_a_session)) == in_a_session


def test_amr_is_kept_and_is_an_empty_list_in_tokens_without_it(verifier, clock):
    two_factors = claims_at(clock.now, amr=["mfa", "otp", "pwd"])
    assert verifier.verify(sign(two_factors))["amr"] == ["mfa", "otp", "pwd"]
    assert has_mfa(verifier.verify(sign(two_factors)))
    # A tollgate from before the second factor put no amr in its tokens.
    older = claims_at(clock.now, amr=REMOVE)
    assert "amr" not in older
    assert verifier.verify(sign(older)) == {**older, "amr": []}
    for amr in (["pwd"], [], ["MFA", "otp", "pwd"], ["mfa:otp"]):
        assert not has_mfa(verifier.verify(sign(claims_at(clock.now, amr=amr)))), amr
    assert not has_mfa(None)
    assert not has_mfa({"sub": "x"})


@pytest.mark.parametrize("typ", ["JWT", "jwt", None, "at+JWT-ish"])
def test_a_token_without_the_access_token_type_is_refused(verifier, clock, typ):
    refused(verifier, sign(claims_at(clock.now), typ=typ), "not an access token (typ must be at+jwt)")


def test_the_media_type_form_of_the_type_is_accepted(verifier, clock):
    assert verifier.verify(sign(claims_at(clock.now), typ="application/at+jwt"))


def test_the_algorithm_comes_from_the_key_not_the_header(verifier, clock):
    claims = claims_at(clock.now)
    # An ES256 token presented under the EdDSA key's kid.
    refused(verifier, sign(claims, EC_KEY, "ES256", "ed"), "token algorithm does not match its key")
    refused(verifier, jwt.encode(claims, "s" * 32, algorithm="HS256", headers={"kid": "ed", "typ": "at+jwt"}),
            "token algorithm does not match its key")


def test_keys_of_algorithms_not_allowed_are_ignored(issuer, clock):
    only_ed = Verifier(config(issuer, ALGORITHMS=["EdDSA"]), clock=clock)
    refused(only_ed, sign(claims_at(clock.now), EC_KEY, "ES256", "ec"), "unknown signing key")
    assert only_ed.verify(sign(claims_at(clock.now)))


@pytest.mark.parametrize(
    "claim, value, message",
    [
        ("sub", 42, "claim sub is not a string"),
        ("sub", "not-a-uuid", "claim sub is not a uuid"),
        ("sub", REMOVE, "token lacks the sub claim"),
        ("username", None, "claim username is not a string"),
        ("username", REMOVE, "token lacks the username claim"),
        ("roles", "admin", "claim roles is not a list of strings"),
        ("roles", ["admin", 1], "claim roles is not a list of strings"),
        ("iat", 1.5, "claim iat is not an integer"),
        ("iat", True, "claim iat is not an integer"),
        ("nbf", "0", "claim nbf is not an integer"),
        ("exp", REMOVE, "token lacks the exp claim"),
        ("jti", 7, "claim jti is not a string"),
        ("jti", REMOVE, "token lacks the jti claim"),
        ("sid", 7, "claim sid is not a uuid"),
        ("sid", "not-a-uuid", "claim sid is not a uuid"),
        ("amr", "mfa", "claim amr is not a list of strings"),
        ("amr", ["mfa", 1], "claim amr is not a list of strings"),
        ("amr", None, "claim amr is not a list of strings"),
    ],
)
def test_every_claim_must_be_present_with_its_json_type(verifier, clock, claim, value, message):
    refused(verifier, sign(claims_at(clock.now, **{claim: value})), message)


def test_wrong_issuer_and_audience_are_refused(verifier, clock):
    refused(verifier, sign(claims_at(clock.now, iss="other")), "wrong issuer")
    refused(verifier, sign(claims_at(clock.now, aud="other")), "wrong audience")
    refused(verifier, sign(claims_at(clock.now, iss=REMOVE)), "token lacks the iss claim")


def test_a_token_without_roles_is_refused(verifier, clock):
    # The contract: roles are always present, possibly empty.
    refused(verifier, sign(claims_at(clock.now, roles=REMOVE)), "token lacks the roles claim")


def test_exp_and_nbf_allow_the_leeway_and_no_more(verifier, clock):
    claims = claims_at(clock.now)
    token = sign(claims)
    clock.now = claims["exp"] + 29
    assert verifier.verify(token)
    clock.now = claims["exp"] + 30
    refused(verifier, token, "token expired")
    early = sign(claims_at(clock.now, nbf=int(clock.now) + 31))
    refused(verifier, early, "token not yet valid")
    clock.advance(1)
    assert verifier.verify(early)


def test_an_unknown_kid_refetches_at_most_once_per_cooldown_and_finds_a_rotated_key(issuer, verifier, clock):
    assert verifier.verify(sign(claims_at(clock.now)))
    assert issuer.jwks_fetches == 1
    new_key = Ed25519PrivateKey.generate()
    rotated = sign(claims_at(clock.now), new_key, kid="new")
    refused(verifier, rotated, "unknown signing key")
    assert issuer.jwks_fetches == 1, "fetched again within the cooldown"
    issuer.jwks["keys"].append(public_jwk(new_key, "new", "EdDSA"))
    clock.advance(29)
    refused(verifier, rotated, "unknown signing key")
    assert issuer.jwks_fetches == 1
    clock.advance(1)
    assert verifier.verify(rotated)
    assert issuer.jwks_fetches == 2
    assert verifier.verify(sign(claims_at(clock.now)))
    assert issuer.jwks_fetches == 2, "a known kid never fetches"


def test_an_unreachable_jwks_is_unavailable_not_invalid(clock):
    dead = Verifier(config(None, JWKS_URL="http://127.0.0.1:9/jwks"), clock=clock)
    with pytest.raises(Unavailable):
        dead.verify(sign(claims_at(clock.now)))


def test_revocations_refuse_tokens_issued_before_not_before_of_their_sub(issuer, feed, clock):
    old = claims_at(clock.now)
    issuer.revocations = [{"sub": old["sub"], "not_before": old["iat"] + 1}]
    feed.revocations.poll_once()
    refused(feed, sign(old), "token revoked")
    assert feed.verify(sign({**old, "iat": old["iat"] + 1}))
    assert feed.verify(sign(claims_at(clock.now)))
    # The poller sends the feed token, and the last `now` as the next `since`.
    issuer.revocations = []
    feed.revocations.poll_once()
    assert issuer.feed_requests[0] == ("/revocations?since=0", "Bearer " + "t" * 24)
    assert issuer.feed_requests[-1][0] == "/revocations?since=1000"
    refused(feed, sign(old), "token revoked")


def test_revocations_cut_at_the_millisecond_where_both_sides_have_it(issuer, feed, clock):
    second = int(clock.now) - 100
    at_ms = second * 1000 + 400
    user, old_feed_user = str(uuid.uuid4()), str(uuid.uuid4())
    issuer.revocations = [
        {"sub": user, "not_before": second + 1, "not_before_ms": at_ms},
        # From a tollgate before millisecond revocation times.
        {"sub": old_feed_user, "not_before": second},
    ]
    feed.revocations.poll_once()
    # A millisecond before, and at the revocation itself, within one second.
    refused(feed, sign(claims_issued_at(at_ms - 1, sub=user)), "token revoked")
    assert feed.verify(sign(claims_issued_at(at_ms, sub=user)))
    # Without the exact issue time, the second decides.
    refused(feed, sign(claims_at(second, sub=user)), "token revoked")
    assert feed.verify(sign(claims_at(second + 1, sub=user)))
    # An entry in whole seconds refuses what was issued before its second began.
    refused(feed, sign(claims_issued_at(second * 1000 - 1, sub=old_feed_user)), "token revoked")
    assert feed.verify(sign(claims_issued_at(second * 1000, sub=old_feed_user)))
    # A jti that is no uuid at all is no time either.
    refused(feed, sign(claims_at(second, sub=user, jti="not-a-uuid")), "token revoked")


def test_a_session_entry_refuses_that_sessions_tokens_alone(issuer, feed, clock):
    now = int(clock.now)
    user, everywhere, stranger = (str(uuid.uuid4()) for _ in range(3))
    ended, kept = str(uuid.uuid4()), str(uuid.uuid4())
    token = sign(claims_at(now - 20, sub=user, sid=ended))
    assert feed.verify(token)
    issuer.revocations = [
        {"sub": user, "sid": ended, "not_before": now - 10, "not_before_ms": (now - 10) * 1000},
        {"sub": user, "not_before": now - 100},
        {"sub": everywhere, "not_before": now - 10},
        # Skipped: taken for an entry without sid, it would refuse every session.
        {"sub": user, "sid": 42, "not_before": now},
    ]
    feed.revocations.poll_once()
    refused(feed, token, "token revoked")
    assert feed.verify(sign(claims_at(now - 5, sub=user, sid=ended))), "that session's token issued after"
    assert feed.verify(sign(claims_at(now - 20, sub=user, sid=kept)))
    assert feed.verify(sign(claims_at(now - 20, sub=user))), "a token without sid"
    assert feed.verify(sign(claims_at(now - 20, sub=stranger, sid=ended))), "another user's, same sid"
    # The user's own entry still applies to every session.
    for sid in (ended, kept, REMOVE):
        refused(feed, sign(claims_at(now - 200, sub=user, sid=sid)), "token revoked")
        refused(feed, sign(claims_at(now - 20, sub=everywhere, sid=sid)), "token revoked")


def test_roles_map_to_is_staff_and_is_superuser_and_follow_changes(clock):
    claims = claims_at(clock.now, roles=["staff"])
    user = user_for_claims(claims, create=True)
    assert (user.is_staff, user.is_superuser) == (True, False)
    assert not user.has_usable_password()
    user = user_for_claims({**claims, "roles": ["admin", "staff", "editors"]}, create=True)
    assert (user.is_staff, user.is_superuser) == (True, True)
    user = user_for_claims({**claims, "roles": []}, create=True)
    assert (user.is_staff, user.is_superuser) == (False, False)
    assert get_user_model().objects.filter(username=claims["username"]).count() == 1
    stored = get_user_model().objects.get(username=claims["username"])
    assert (stored.is_staff, stored.is_superuser) == (False, False)


def test_without_create_users_an_unknown_username_is_refused(clock):
    with pytest.raises(TokenError, match="no local user"):
        user_for_claims(claims_at(clock.now), create=False)


def test_an_inactive_local_user_is_refused(clock):
    claims = claims_at(clock.now)
    get_user_model().objects.create(username=claims["username"], is_active=False)
    with pytest.raises(TokenError, match="inactive"):
        user_for_claims(claims, create=True)
