#!/usr/bin/env python3
"""Signs up N users against a running tollgate, for the load test (scripts/load.sh).

    scripts/signup_users.py http://127.0.0.1:18911 30000 PREFIX ACCESS_FILE REFRESH_FILE [DOMAIN]

User i is PREFIXu<i> with the password "load test password <i>" and, when DOMAIN is given,
the email PREFIXu<i>@DOMAIN (the address of the username, which the server stores
lower-case). ACCESS_FILE gets one access token a line and REFRESH_FILE the matching
refresh token, both in the order of i. Python's standard library only; a few threads over
kept-alive connections, so that 30,000 users take seconds when the server hashes at a cheap
argon2 cost. Any answer but 201 stops it with the status and body (the body of an error
holds no secret).
"""

import http.client
import json
import sys
import threading
from urllib.parse import urlsplit

THREADS = 8


def main():
    base, count, prefix, access_file, refresh_file = sys.argv[1:6]
    domain = sys.argv[6] if len(sys.argv) > 6 else None
    count = int(count)
    url = urlsplit(base)
    tokens = [None] * count
    failures = []

    def work(first):
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        for i in range(first, count, THREADS):
            user = {"username": f"{prefix}u{i + 1}", "password": f"load test password {i + 1}"}
            if domain:
                user["email"] = f"{prefix}u{i + 1}@{domain}"
            body = json.dumps(user)
            conn.request("POST", "/auth/signup", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            answer = response.read()
            if response.status != 201:
                failures.append(f"signup {i + 1}: {response.status} {answer[:200]!r}")
                return
            parsed = json.loads(answer)
            tokens[i] = (parsed["access_token"], parsed["refresh_token"])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures or None in tokens:
        sys.exit("\n".join(failures) or "a signup thread died")
    with open(access_file, "w") as access, open(refresh_file, "w") as refresh:
        for access_token, refresh_token in tokens:
            access.write(access_token + "\n")
            refresh.write(refresh_token + "\n")


if __name__ == "__main__":
    main()
