"""A Django REST framework permission for sessions signed in with a second factor.

    from django_tollgate.permissions import MfaRequired

    class PayoutView(APIView):
        permission_classes = [MfaRequired]

A request authenticated by TollgateAuthentication whose token has "mfa" in its amr
passes; one whose token lacks it gets 403 `{"error", "code": "mfa_required"}`; one without
a token, DRF's 401 (with django_tollgate's exception handler, `missing_token`).
"""

from rest_framework import permissions

from .bearer import MFA_REQUIRED_CODE, MFA_REQUIRED_MESSAGE
from .verifier import has_mfa


class MfaRequired(permissions.BasePermission):
    # DRF answers a refusal with this as the body (a dict detail is kept as it is).
    message = {"error": MFA_REQUIRED_MESSAGE, "code": MFA_REQUIRED_CODE}
    code = MFA_REQUIRED_CODE

    def has_permission(self, request, view):
        # request.auth is the verified claims for TollgateAuthentication; anything else
        # (no token, another authentication class) has no amr and is refused.
        return has_mfa(request.auth)
