"""The browser session's cookies, and the same-origin check of a browser's request.

Shared by the authentication of every request (:mod:`gateway.api.app`), the login routes and the WebSocket.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "SESSION_COOKIE", "clear_session_cookies", "same_origin",
           "set_session_cookies"]

SESSION_COOKIE = "hearth_session"
# Not HttpOnly: the page's script reads it and sends it back as the X-CSRF-Token header (double submit).
CSRF_COOKIE = "hearth_csrf"
CSRF_HEADER = "X-CSRF-Token"


def same_origin(request: web.Request) -> bool:
    """Whether a browser says this request comes from a page of this gateway (Origin, else Referer).

    Neither header: not a browser's cross-site request (browsers send Origin on every cross-origin POST,
    and on same-origin ones too), so it is let through; the CSRF token is still required.
    """
    from urllib.parse import urlsplit

    source = request.headers.get("Origin") or request.headers.get("Referer")
    if source is None:
        return True
    if source == "null":
        return False
    host = request.headers.get("Host") or request.host
    try:
        return urlsplit(source).netloc.casefold() == host.casefold()
    except ValueError:
        return False


def set_session_cookies(request: web.Request, response: web.StreamResponse, session_id: str, csrf: str,
                        max_age_s: float | None) -> None:
    # Secure only when this request came over TLS: on plain http://<pi>:8470 a Secure cookie would never
    # come back. Behind a TLS-terminating proxy, the proxy should set it (README).
    secure = request.secure
    max_age = None if max_age_s is None else int(max_age_s)
    response.set_cookie(SESSION_COOKIE, session_id, path="/", httponly=True, samesite="Strict", secure=secure,
                        max_age=max_age)
    response.set_cookie(CSRF_COOKIE, csrf, path="/", httponly=False, samesite="Strict", secure=secure,
                        max_age=max_age)


def clear_session_cookies(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")
