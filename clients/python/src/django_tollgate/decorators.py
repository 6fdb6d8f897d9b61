"""token_required: @login_required for token clients, answering 401 JSON, not a redirect."""

import functools

from .http import TokenError, Unavailable, authenticate, bearer_token, error_response, unauthorized


def token_required(view):
    """Lets the view run only for a request with a valid tollgate token. Works with or
    without TollgateMiddleware (without it, the token is verified here)."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        if not getattr(request, "_tollgate_verified", False):
            token = bearer_token(request)
            if token is None:
                return unauthorized("a bearer token is required", "missing_token", False)
            if not token:
                return unauthorized("the Authorization header is not a bearer token", "invalid_token", True)
            try:
                request.user, request.auth = authenticate(request, token)
            except (TokenError, Unavailable) as e:
                return error_response(e)
            request._tollgate_verified = True
        return view(request, *args, **kwargs)

    return wrapped
