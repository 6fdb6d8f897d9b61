from django.http import JsonResponse
from django.urls import path
from rest_framework.decorators import api_view
from rest_framework.response import Response

from django_tollgate.decorators import token_required


def whoami(request):
    user = request.user
    return {"username": user.get_username(), "sub": request.auth["sub"],
            "is_staff": user.is_staff, "is_superuser": user.is_superuser}


@api_view(["GET"])
def drf_view(request):
    return Response(whoami(request))


@token_required
def plain_view(request):
    return JsonResponse(whoami(request))


urlpatterns = [path("drf/", drf_view), path("plain/", plain_view)]
