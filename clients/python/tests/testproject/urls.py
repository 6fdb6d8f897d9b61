from django.http import JsonResponse
from django.urls import path
from rest_framework.decorators import api_view, permission_classes
from rest_framework.response import Response

from django_tollgate.decorators import mfa_required, token_required
from django_tollgate.permissions import MfaRequired


def whoami(request):
    user = request.user
    return {"username": user.get_username(), "sub": request.auth["sub"], "amr": request.auth["amr"],
            "is_staff": user.is_staff, "is_superuser": user.is_superuser}


@api_view(["GET"])
def drf_view(request):
    return Response(whoami(request))


@token_required
def plain_view(request):
    return JsonResponse(whoami(request))


@api_view(["GET"])
@permission_classes([MfaRequired])
def drf_mfa_view(request):
    return Response(whoami(request))


@mfa_required
def plain_mfa_view(request):
    return JsonResponse(whoami(request))


urlpatterns = [path("drf/", drf_view), path("plain/", plain_view),
               path("mfa/drf/", drf_mfa_view), path("mfa/plain/", plain_mfa_view)]
