"""Sets request.user and request.auth from a bearer token, for plain Django views."""

from django.contrib.auth.models import AnonymousUser

from .bearer import authenticate_bearer, bearer_token


class TollgateMiddleware:
    """A request with a bearer token gets the token's user, or a 401 when the token is
    not valid; a request without one is left as it is (anonymous, or a session user
    while the app still has sessions), and token_required refuses it where it matters."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = bearer_token(request)
        if token is None:
            if not hasattr(request, "user"):
                request.user = AnonymousUser()
            return self.get_response(request)
        return authenticate_bearer(request, token) or self.get_response(request)
