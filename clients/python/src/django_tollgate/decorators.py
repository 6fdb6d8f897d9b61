"""token_required: @login_required for token clients, answering 401 JSON, not a redirect;
mfa_required: the same, for sessions signed in with a second factor only."""

import functools

from .bearer import authenticate_bearer, bearer_token, mfa_refused, unauthorized
from .verifier import has_mfa


def token_required(view):
    """Lets the view run only for a request with a valid tollgate token. Works with or
    without TollgateMiddleware (without it, the token is verified here)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not getattr(request, "_tollgate_verified", False):
            token = bearer_token(request)
            if token is None:
                return unauthorized("a bearer token is required", "missing_token", False)
            refused = authenticate_bearer(request, token)
            if refused is not None:
                return refused
        return view(request, *args, **kwargs)

    return wrapped


def mfa_required(view):
    """token_required, and the token's session was signed in with a second factor ("mfa"
    in request.auth["amr"]): a valid token without it gets 403 `{"error", "code":
    "mfa_required"}`, as tollgate's own admin API answers; no token or a bad one, the 401s
    of token_required."""

    @token_required
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not has_mfa(getattr(request, "auth", None)):
            return mfa_refused()
        return view(request, *args, **kwargs)

    return wrapped
