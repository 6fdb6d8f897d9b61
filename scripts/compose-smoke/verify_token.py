"""Verifies an access token (read from standard input) against a JWKS document the way a
resource server does, with PyJWT: the key is picked by the token's `kid`, and the
signature, `exp`, `iss` and `aud` are checked. Prints the token's `sub`; exits non-zero
with the reason when it does not verify.

    verify_token.py JWKS_FILE ISSUER AUDIENCE < token
"""

import json
import sys

import jwt


def main():
    jwks_file, issuer, audience = sys.argv[1:4]
    token = sys.stdin.read().strip()
    with open(jwks_file) as f:
        keys = jwt.PyJWKSet.from_dict(json.load(f)).keys
    kid = jwt.get_unverified_header(token).get("kid")
    matching = [k for k in keys if k.key_id == kid]
    if not matching:
        sys.exit(f"no key with kid {kid!r} in the JWKS (kids: {[k.key_id for k in keys]})")
    key = matching[0]
    claims = jwt.decode(token, key, algorithms=[key.algorithm_name], issuer=issuer, audience=audience)
    print(claims["sub"])


if __name__ == "__main__":
    main()
