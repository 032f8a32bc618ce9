"""The admin key of ``modelyard ui``: signing in once, and the check on every action.

Signing in with ``MODELYARD_UI_KEY`` sets a cookie holding an HMAC of a fixed label
under the key (never the key itself): ``HttpOnly`` so page scripts cannot read it,
``SameSite=Strict`` so another site's form cannot post with it (the app's only
protection against cross-site requests needs nothing more, since every action is a
same-site POST). Changing the key signs everyone out.
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from modelyard.errors import AuthError
from modelyard.ui.config import UiSettings

__all__ = ["COOKIE", "check_admin", "is_admin", "session_token"]

COOKIE = "modelyard_ui_admin"
_LABEL = b"modelyard-ui-admin-session-v1"


def session_token(ui: UiSettings) -> str | None:
    """The cookie value that proves a sign-in under the current key (None: no key set)."""
    if ui.ui_key is None:
        return None
    key = ui.ui_key.get_secret_value().encode()
    return hmac.new(key, _LABEL, hashlib.sha256).hexdigest()


def key_matches(ui: UiSettings, given: str) -> bool:
    """Whether ``given`` is the admin key (constant time)."""
    if ui.ui_key is None:
        return False
    return hmac.compare_digest(given.encode(), ui.ui_key.get_secret_value().encode())


def is_admin(request: Request, ui: UiSettings) -> bool:
    """Whether the request carries a valid sign-in cookie."""
    token = session_token(ui)
    given = request.cookies.get(COOKIE, "")
    return token is not None and hmac.compare_digest(given.encode(), token.encode())


def check_admin(request: Request, ui: UiSettings) -> None:
    """Refuse an action from a visitor who has not signed in with the admin key.

    Raises:
        AuthError: no key is configured (the app is read-only), or not signed in.
    """
    if ui.ui_key is None:
        raise AuthError(
            "this modelyard ui is read-only: start it with MODELYARD_UI_KEY set (8 or "
            "more characters) to upload files and cancel jobs"
        )
    if not is_admin(request, ui):
        raise AuthError("sign in with the admin key (MODELYARD_UI_KEY) to do this")
