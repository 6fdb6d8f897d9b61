"""A Django REST framework authentication class for tollgate's access tokens.

    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["django_tollgate.authentication.TollgateAuthentication"],
        "EXCEPTION_HANDLER": "django_tollgate.authentication.exception_handler",
    }

The exception handler is optional: it gives a request without a token the same
`{"error", "code": "missing_token"}` body as tollgate instead of DRF's `{"detail"}`.
"""

from rest_framework import authentication, exceptions

from .bearer import authenticate, bearer_token, challenge
from .verifier import TokenError, Unavailable


class TokenRefused(exceptions.AuthenticationFailed):
    def __init__(self, message, code):
        super().__init__({"error": message, "code": code})


class KeysUnavailable(exceptions.APIException):
    status_code = 503

    def __init__(self):
        super().__init__({"error": "cannot check tokens now: the signing keys are unavailable", "code": "unavailable"})


class TollgateAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        token = bearer_token(request._request)
        if token is None:
            # No token: let other classes try, and the permissions decide.
            return None
        request._tollgate_presented = True
        if not token:
            raise TokenRefused("the Authorization header is not a bearer token", "invalid_token")
        try:
            return authenticate(request._request, token)
        except TokenError as e:
            raise TokenRefused(str(e), e.code) from None
        except Unavailable:
            raise KeysUnavailable() from None

    def authenticate_header(self, request):
        return challenge(getattr(request, "_tollgate_presented", False))


def exception_handler(exc, context):
    # Imported here: rest_framework.views imports the authentication classes named in
    # the settings, this module among them.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.NotAuthenticated):
        response.data = {"error": "a bearer token is required", "code": "missing_token"}
    return response
