"""The local Django user that a verified token speaks for."""

from django.contrib.auth import get_user_model

from .verifier import TokenError

# tollgate's roles that Django's admin flags follow.
FLAGS = {"is_staff": "staff", "is_superuser": "admin"}


def user_for_claims(claims, create):
    """The user with the token's username: created on first sight when `create`, with an
    unusable password (tollgate keeps the password), and with is_staff/is_superuser
    following the token's roles."""
    model = get_user_model()
    lookup = {model.USERNAME_FIELD: claims["username"]}
    flags = {flag: role in claims["roles"] for flag, role in FLAGS.items()}
    try:
        user = model._default_manager.get(**lookup)
    except model.DoesNotExist:
        if not create:
            raise TokenError("no local user for this token") from None
        user = model(**lookup, **flags)
        user.set_unusable_password()
        user.save()
        return user
    changed = [flag for flag, value in flags.items() if getattr(user, flag) != value]
    if changed:
        for flag in changed:
            setattr(user, flag, flags[flag])
        user.save(update_fields=changed)
    if not user.is_active:
        raise TokenError("the local user is inactive")
    return user
