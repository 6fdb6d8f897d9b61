"""Sets request.user and request.auth from a bearer token, for plain Django views."""

from django.contrib.auth.models import AnonymousUser

from .http import TokenError, Unavailable, authenticate, bearer_token, error_response, unauthorized


class TollgateMiddleware:
    """A request with a bearer token gets the token's user, or a 401 when the token is
    not valid; a request without one is left as it is (anonymous, or a session user
    while the app still has sessions), and token_required refuses it where it matters."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = bearer_token(request)
        if token is None and not hasattr(request, "user"):
            request.user = AnonymousUser()
        if token is not None:
            if not token:
                return unauthorized("the Authorization header is not a bearer token", "invalid_token", True)
            try:
                request.user, request.auth = authenticate(request, token)
            except (TokenError, Unavailable) as e:
                return error_response(e)
            request._tollgate_verified = True
        return self.get_response(request)
