"""token_required: @login_required for token clients, answering 401 JSON, not a redirect."""

import functools

from .bearer import authenticate_bearer, bearer_token, unauthorized


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
