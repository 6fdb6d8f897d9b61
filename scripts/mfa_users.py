#!/usr/bin/env python3
"""Users with a TOTP factor, for the two-step login case of the load test (scripts/load.sh).

    scripts/mfa_users.py enrol BASE COUNT PREFIX ENROLLED   # on a server at a cheap argon2 cost
    scripts/mfa_users.py rehash BASE ENROLLED               # on the server at the cost to measure
    scripts/mfa_users.py codes ENROLLED STEPS > CODES       # for scripts/wrk/mfa.lua

enrol signs up PREFIXu<i> (i = 1..COUNT) with the password "cheap password <i>", sets up
TOTP (POST /auth/mfa/totp/setup with that password) and confirms it with the code of the
current time step (POST /auth/mfa/totp/confirm). ENROLLED gets one line a user: username,
the access token, the base32 secret and the time step of the code the server accepted
(it keeps it, and refuses a code of it or an earlier step: the replay rule).

Made at a cheap cost, the password hashes would make the logins cheap (a hash is verified
at the cost it was made with). rehash changes every password to "load test password <i>"
(POST /auth/password), so that each hash is made by the server at its own cost: one hash
each, where a signup and a setup at that cost would take two.

codes writes, for scripts/wrk/mfa.lua: a first line "FIRST_STEP STEPS", then one line a
user, tab-separated: username, password, the last step accepted, and the TOTP codes
(RFC 6238: SHA-1, 6 digits, 30 s) of the STEPS time steps from the current one
(FIRST_STEP), separated by spaces.

Python's standard library only; a few threads over kept-alive connections. Any unexpected
answer stops it with the status and body (the body of an error holds no secret).
"""

import base64
import hashlib
import hmac
import http.client
import json
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

THREADS = 8
STEP_SECS = 30


def totp(secret, step):
    """The 6-digit code of `secret` (bytes) for time step `step` (RFC 6238 over RFC 4226)."""
    digest = hmac.new(secret, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def decode_secret(encoded):
    return base64.b32decode(encoded + "=" * (-len(encoded) % 8))


def current_step():
    return int(time.time()) // STEP_SECS


def in_threads(base, count, work):
    """Runs work(conn, i) for i in 0..count-1 over THREADS kept-alive connections; exits with
    the first failure."""
    url = urlsplit(base)
    failures = []

    def worker(first):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        for i in range(first, count, THREADS):
            if failures:
                return
            try:
                work(conn, i)
            except Exception as e:  # noqa: BLE001 - reported and fatal
                failures.append(f"user {i + 1}: {e}")
                return

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        sys.exit("\n".join(failures))


def call(conn, path, body, expected, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request("POST", path, json.dumps(body), headers)
    response = conn.getresponse()
    answer = response.read()
    if response.status != expected:
        raise RuntimeError(f"{path}: {response.status} {answer[:200]!r}")
    return json.loads(answer)


def enrol(base, count, prefix, enrolled_file):
    rows = [None] * count

    def work(conn, i):
        username, password = f"{prefix}u{i + 1}", f"cheap password {i + 1}"
        signed_up = call(conn, "/auth/signup", {"username": username, "password": password}, 201)
        access = signed_up["access_token"]
        setup = call(conn, "/auth/mfa/totp/setup", {"current_password": password}, 200, access)
        secret = decode_secret(setup["secret"])
        # The server takes the current step's code one step late too, so a step that ends
        # between this and the server's check is still accepted, as this step.
        step = current_step()
        confirmed = call(conn, "/auth/mfa/totp/confirm", {"code": totp(secret, step)}, 200, access)
        if len(confirmed.get("recovery_codes", [])) != 10:
            raise RuntimeError(f"confirm answered {confirmed!r}")
        rows[i] = f"{username} {access} {setup['secret']} {step}"

    in_threads(base, count, work)
    with open(enrolled_file, "w") as out:
        out.write("".join(row + "\n" for row in rows))


def read_enrolled(enrolled_file):
    with open(enrolled_file) as lines:
        return [line.split() for line in lines]


def rehash(base, enrolled_file):
    rows = read_enrolled(enrolled_file)

    def work(conn, i):
        _, access, _, _ = rows[i]
        body = {"current_password": f"cheap password {i + 1}", "new_password": f"load test password {i + 1}"}
        call(conn, "/auth/password", body, 200, access)

    in_threads(base, len(rows), work)


def codes(enrolled_file, steps):
    first = current_step()
    out = [f"{first} {steps}"]
    for i, (username, _, secret, step) in enumerate(read_enrolled(enrolled_file)):
        key = decode_secret(secret)
        user_codes = " ".join(totp(key, s) for s in range(first, first + steps))
        out.append(f"{username}\tload test password {i + 1}\t{step}\t{user_codes}")
    sys.stdout.write("".join(line + "\n" for line in out))


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "enrol":
        base, count, prefix, enrolled_file = args
        enrol(base, int(count), prefix, enrolled_file)
    elif command == "rehash":
        rehash(*args)
    elif command == "codes":
        enrolled_file, steps = args
        codes(enrolled_file, int(steps))
    else:
        sys.exit(f"unknown command {command!r} (enrol, rehash or codes)")


if __name__ == "__main__":
    main()
