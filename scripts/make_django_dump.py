#!/usr/bin/env python3
"""Writes a `manage.py dumpdata auth.user`-shaped JSON list of N users, for import benchmarks.

    scripts/make_django_dump.py 100000 > users.json
    scripts/make_django_dump.py 100000 --numeric-groups groups.json > users.json

Python's standard library only. The shape is that of Django 5.2's dumpdata (checked
against tests/fixtures/django/users*.json, made by a real Django). Hashing 100,000
passwords would take longer than importing them, so a few hashes are made once (low-cost
pbkdf2_sha256, pbkdf2_sha1 and scrypt) and shared: user N has the password `password-K`
where K = N % KEYS, hashed by hasher N % 3, and every 50th user has an unusable password.
The users are written one at a time, so memory stays flat whatever N.
"""

import argparse
import base64
import hashlib
import json
import random
import string
import sys
from datetime import datetime, timedelta, timezone

KEYS = 16
GROUPS = ["Editors", "Support Team", "Billing", "Beta Testers"]
# auth.add_user, by natural key and by the pk a fresh Django 5.2 database gives it.
PERMISSION = ["add_user", "auth", "user"]


def salt(rng):
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(22))


def pbkdf2(name, digest, password, rng, iterations=1000):
    s = salt(rng)
    raw = hashlib.pbkdf2_hmac(digest, password.encode(), s.encode(), iterations)
    return f"{name}${iterations}${s}${base64.b64encode(raw).decode()}"


def scrypt(password, rng, n=1024, r=4, p=1):
    s = salt(rng)
    raw = hashlib.scrypt(password.encode(), salt=s.encode(), n=n, r=r, p=p, dklen=64)
    return f"scrypt${n}${s}${r}${p}${base64.b64encode(raw).decode()}"


def hashes(rng):
    """hashes[kind][k] is the hash of password-k."""
    return [
        [pbkdf2("pbkdf2_sha256", "sha256", f"password-{k}", rng) for k in range(KEYS)],
        [pbkdf2("pbkdf2_sha1", "sha1", f"password-{k}", rng) for k in range(KEYS)],
        [scrypt(f"password-{k}", rng) for k in range(KEYS)],
    ]


def stamp(moment):
    # dumpdata's form: milliseconds and Z.
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def user(pk, rng, table, numeric_groups):
    joined = datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=rng.randrange(5 * 365 * 86400))
    if pk % 50 == 0:
        password = "!" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(40))
    else:
        password = table[pk % len(table)][pk % KEYS]
    chosen = sorted(rng.sample(range(len(GROUPS)), rng.randrange(3)))
    return {
        "model": "auth.user",
        "pk": pk,
        "fields": {
            "password": password,
            "last_login": stamp(joined + timedelta(days=rng.randrange(400))) if pk % 3 else None,
            "is_superuser": pk % 1000 == 1,
            "username": f"user{pk}",
            "first_name": f"First{pk}",
            "last_name": f"Last{pk}",
            "email": f"user{pk}@example.org",
            "is_staff": pk % 100 == 1,
            "is_active": pk % 97 != 0,
            "date_joined": stamp(joined),
            "groups": [i + 1 if numeric_groups else [GROUPS[i]] for i in chosen],
            "user_permissions": ([] if pk % 10 else [9] if numeric_groups else [PERMISSION]),
        },
    }


def groups_dump():
    return [{"model": "auth.group", "pk": i + 1, "fields": {"name": name, "permissions": []}}
            for i, name in enumerate(GROUPS)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", type=int, help="number of users")
    parser.add_argument("--numeric-groups", metavar="GROUPS_FILE",
                        help="write groups as pks (dumpdata without --natural-foreign) and the "
                             "matching `dumpdata auth.group` to GROUPS_FILE")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.count < 0:
        parser.error("count must not be negative")
    rng = random.Random(args.seed)
    table = hashes(rng)
    numeric = args.numeric_groups is not None
    if numeric:
        with open(args.numeric_groups, "w", encoding="utf-8") as f:
            json.dump(groups_dump(), f, indent=1)
            f.write("\n")
    out = sys.stdout
    out.write("[")
    for pk in range(1, args.count + 1):
        out.write("\n" if pk == 1 else ",\n")
        out.write(json.dumps(user(pk, rng, table, numeric), separators=(",", ":")))
    out.write("\n]\n")


if __name__ == "__main__":
    main()
