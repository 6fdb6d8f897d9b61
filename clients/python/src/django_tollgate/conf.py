"""The TOLLGATE setting, with its defaults, and the one Verifier made from it."""

import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from .verifier import Verifier

DEFAULTS = {
    "JWKS_URL": None,
    "ISSUER": None,
    "AUDIENCE": None,
    "REVOCATIONS_URL": None,
    "REVOCATION_FEED_TOKEN": None,
    "POLL_SECS": 5,
    "LEEWAY_SECS": 30,
    "ALGORITHMS": ["EdDSA", "ES256", "RS256"],
    "CREATE_USERS": True,
    # Not in the contract's list: the least time between two JWKS fetches for unknown kids.
    "JWKS_COOLDOWN_SECS": 30,
}
REQUIRED = ("JWKS_URL", "ISSUER", "AUDIENCE")

_lock = threading.Lock()
_verifier = None


def tollgate_settings():
    given = getattr(settings, "TOLLGATE", None)
    if not isinstance(given, dict):
        raise ImproperlyConfigured("settings.TOLLGATE must be a dict with JWKS_URL, ISSUER and AUDIENCE")
    unknown = set(given) - set(DEFAULTS)
    if unknown:
        raise ImproperlyConfigured(f"settings.TOLLGATE has unknown keys: {', '.join(sorted(unknown))}")
    config = {**DEFAULTS, **given}
    missing = [name for name in REQUIRED if not config[name]]
    if missing:
        raise ImproperlyConfigured(f"settings.TOLLGATE lacks {', '.join(missing)}")
    if config["REVOCATIONS_URL"] and not config["REVOCATION_FEED_TOKEN"]:
        raise ImproperlyConfigured("settings.TOLLGATE: REVOCATIONS_URL needs REVOCATION_FEED_TOKEN")
    return config


def get_verifier():
    global _verifier
    with _lock:
        if _verifier is None:
            _verifier = Verifier(tollgate_settings())
        return _verifier


def reset_verifier(verifier=None):
    """Drops the cached verifier (or installs one, e.g. with a test clock)."""
    global _verifier
    with _lock:
        if _verifier is not None:
            _verifier.close()
        _verifier = verifier


def _on_setting_changed(setting, **kwargs):
    if setting == "TOLLGATE":
        reset_verifier()


setting_changed.connect(_on_setting_changed)
