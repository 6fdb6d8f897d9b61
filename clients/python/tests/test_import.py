"""From Django to tollgate, end to end: users of this Django project, hashed by each of
Django's hashers, are dumped with `dumpdata`, imported by `tollgate user import`, log in to
tollgate with the passwords they had, and then reach this project's DRF and plain views
with tollgate's tokens."""

import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.contrib.auth import hashers
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import override_settings

from test_views import VIEWS, assert_refused, get, tollgate_token_parts



# Django's hashers at low cost: the format and the algorithm are Django's own (the cost is
# in each hash, as at any cost), and a login stays cheap on a busy CI machine. The Rust
# suite checks Django's default costs against vectors made by a real Django.
class Pbkdf2(hashers.PBKDF2PasswordHasher):
    iterations = 1000


class Pbkdf2Sha1(hashers.PBKDF2SHA1PasswordHasher):
    iterations = 1000


class Argon2(hashers.Argon2PasswordHasher):
    time_cost, memory_cost, parallelism = 1, 1024, 1


class BcryptSha256(hashers.BCryptSHA256PasswordHasher):
    rounds = 4


class Bcrypt(hashers.BCryptPasswordHasher):
    rounds = 4


class Scrypt(hashers.ScryptPasswordHasher):
    work_factor, block_size, parallelism = 2**10, 4, 1


HASHERS = {cls.algorithm: f"{__name__}.{cls.__name__}"
           for cls in (Pbkdf2, Pbkdf2Sha1, Argon2, BcryptSha256, Bcrypt, Scrypt)}
# username: (hasher, password, is_staff, is_superuser, groups)
USERS = {
    "mig_pbkdf2": ("pbkdf2_sha256", "pbkdf2 pässword", False, False, ["Editors"]),
    "mig_pbkdf2_sha1": ("pbkdf2_sha1", "sha1 password", False, False, []),
    "mig_argon2": ("argon2", "argon2 password", True, False, ["Editors", "Support Team"]),
    "mig_bcrypt_sha256": ("bcrypt_sha256", "bcrypt-sha256 " + "x" * 80, False, False, []),
    "mig_bcrypt": ("bcrypt", "bcrypt password", True, True, []),
    "mig.scrypt+user@example.org": ("scrypt", "scrypt password", False, False, []),
}


@pytest.fixture(scope="module")
def migrated(tollgate, tmp_path_factory):
    """The Django users, dumped and imported into the running tollgate; the import's output."""
    model = get_user_model()
    groups = {name: Group.objects.get_or_create(name=name)[0] for name in ("Editors", "Support Team")}
    for username, (hasher, password, staff, superuser, names) in USERS.items():
        with override_settings(PASSWORD_HASHERS=[HASHERS[hasher]]):
            user = model.objects.create(username=username, password=make_password(password),
                                        is_staff=staff, is_superuser=superuser,
                                        email=f"{username.split('@')[0]}@Example.COM")
        assert user.password.startswith(hasher + "$"), user.password[:20]
        user.groups.set(groups[name] for name in names)
    dump = tmp_path_factory.mktemp("dump") / "users.json"
    call_command("dumpdata", "auth.user", natural_foreign=True, indent=1, output=str(dump))
    records = json.loads(dump.read_text())
    assert {r["fields"]["username"] for r in records} >= set(USERS)
    done = tollgate.command("user", "import", str(dump))
    assert done.returncode == 0, done.stderr
    return done.stdout


def login(tollgate, username, password):
    return tollgate.call("POST", "/auth/login", {"username": username, "password": password})


def test_every_django_user_imports(migrated):
    first = migrated.splitlines()[0]
    imported = int(first.split()[1].rstrip(","))
    assert first.endswith("rejected 0"), migrated
    assert imported >= len(USERS)


@pytest.mark.parametrize("username", USERS)
def test_each_user_logs_in_with_their_django_password_and_the_hash_becomes_argon2id(tollgate, migrated, username):
    hasher, password, *_ = USERS[username]
    assert tollgate.password_hash(username).startswith(hasher + "$")
    status, body = login(tollgate, username, password + "x")
    assert (status, body["code"]) == (401, "invalid_credentials")
    status, body = login(tollgate, username.upper(), password)
    assert status == 200, body
    assert body["user"]["email"] == f"{username.split('@')[0]}@example.com"
    assert tollgate.password_hash(username).startswith("$argon2id$")
    status, body = login(tollgate, username, password)
    assert status == 200, body


@pytest.mark.parametrize("path", VIEWS)
@pytest.mark.parametrize("username", USERS)
def test_the_views_accept_the_token_and_map_staff_and_admin(tollgate, verifier, migrated, username, path):
    _, password, staff, superuser, groups = USERS[username]
    status, session = login(tollgate, username, password)
    assert status == 200, session
    expected_roles = sorted({g.lower().replace(" ", "_") for g in groups}
                            | ({"staff"} if staff else set()) | ({"admin"} if superuser else set()))
    assert session["user"]["roles"] == expected_roles
    # The local user's flags are tollgate's roles, whatever Django had stored.
    get_user_model().objects.filter(username=username).update(is_staff=not staff, is_superuser=not superuser)
    response = get(path, session["access_token"])
    assert response.status_code == 200, response.content
    assert response.json() == {"username": username, "sub": session["user"]["id"], "amr": ["pwd"],
                               "is_staff": staff, "is_superuser": superuser}


@pytest.mark.parametrize("path", VIEWS)
def test_roles_changed_in_tollgate_reach_the_django_flags(tollgate, verifier, migrated, path):
    username, (_, password, *_) = "mig_pbkdf2_sha1", USERS["mig_pbkdf2_sha1"]
    changed = tollgate.command("user", "roles", username, "--add", "staff", "--add", "admin")
    assert changed.returncode == 0, changed.stderr
    try:
        status, session = login(tollgate, username, password)
        assert status == 200, session
        body = get(path, session["access_token"]).json()
        assert (body["is_staff"], body["is_superuser"]) == (True, True)
    finally:
        tollgate.command("user", "roles", username, "--remove", "staff", "--remove", "admin")


@pytest.mark.parametrize("path", VIEWS)
def test_forged_expired_and_logged_out_tokens_of_imported_users_are_refused(tollgate, verifier, clock, migrated, path):
    username, (_, password, *_) = "mig_argon2", USERS["mig_argon2"]
    status, session = login(tollgate, username, password)
    assert status == 200, session
    token = session["access_token"]
    assert get(path, token).status_code == 200

    header, claims = tollgate_token_parts(token)
    forged = jwt.encode({**claims, "roles": ["admin", "staff"]}, Ed25519PrivateKey.generate(),
                        algorithm="EdDSA", headers=header)
    assert_refused(get(path, forged), error="invalid token signature")

    clock.now = claims["exp"] + 30
    assert_refused(get(path, token), error="token expired")
    clock.now = claims["iat"]

    status, _ = tollgate.call("POST", "/auth/logout", token=token)
    assert status == 204
    verifier.revocations.poll_once()
    assert_refused(get(path, token), error="token revoked")
