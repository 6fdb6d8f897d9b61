"""A small Django project for the tests; conftest.py sets the environment it reads."""

import os

SECRET_KEY = "tests only"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"]
MIDDLEWARE = ["django_tollgate.middleware.TollgateMiddleware"]
ROOT_URLCONF = "testproject.urls"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["TOLLGATE_TEST_DB"]}}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

_url = os.environ["TOLLGATE_TEST_URL"]
TOLLGATE = {
    "JWKS_URL": f"{_url}/.well-known/jwks.json",
    "ISSUER": "tollgate",
    "AUDIENCE": "tollgate",
    "REVOCATIONS_URL": f"{_url}/auth/revocations",
    "REVOCATION_FEED_TOKEN": os.environ["TOLLGATE_TEST_FEED_TOKEN"],
}
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["django_tollgate.authentication.TollgateAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "EXCEPTION_HANDLER": "django_tollgate.authentication.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
