"""tollgate's 401 (JSON `{"error", "code"}` and a Bearer challenge), 403 mfa_required and 503."""

from django.http import JsonResponse

from .conf import get_verifier
from .users import user_for_claims
from .verifier import TokenError, Unavailable


def challenge(presented):
    # error="invalid_token" only when a token was presented (RFC 6750 §3.1), as tollgate does.
    return 'Bearer realm="tollgate", error="invalid_token"' if presented else 'Bearer realm="tollgate"'


def unauthorized(message, code, presented):
    response = JsonResponse({"error": message, "code": code}, status=401)
    response["WWW-Authenticate"] = challenge(presented)
    return response


# tollgate's own message and code for a token without a second factor (its admin API under
# ADMIN_REQUIRE_MFA answers the same).
MFA_REQUIRED_MESSAGE = "this needs a session signed in with a second factor"
MFA_REQUIRED_CODE = "mfa_required"


def mfa_refused():
    """The 403 to a valid token whose session was signed in without a second factor. No
    challenge: the token is fine, the client must sign in again with the second factor."""
    return JsonResponse({"error": MFA_REQUIRED_MESSAGE, "code": MFA_REQUIRED_CODE}, status=403)


def unavailable(message):
    return JsonResponse({"error": message, "code": "unavailable"}, status=503)


def bearer_token(request):
    """The token of an `Authorization: Bearer` header, "" for another or a bad header, None without one."""
    header = request.META.get("HTTP_AUTHORIZATION")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def authenticate(request, token):
    """(user, claims) for a token, else TokenError or Unavailable."""
    verifier = get_verifier()
    claims = verifier.verify(token)
    return user_for_claims(claims, verifier.config["CREATE_USERS"]), claims


def error_response(error):
    if isinstance(error, Unavailable):
        return unavailable("cannot check tokens now: the signing keys are unavailable")
    return unauthorized(str(error), error.code, presented=True)


def authenticate_bearer(request, token):
    """Sets request.user and request.auth from a presented token; the error response, or None."""
    if not token:
        return unauthorized("the Authorization header is not a bearer token", "invalid_token", True)
    try:
        request.user, request.auth = authenticate(request, token)
    except (TokenError, Unavailable) as e:
        return error_response(e)
    request._tollgate_verified = True
    return None
