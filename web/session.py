"""Signing in to the pages: the ticket API's own users, roles and tokens, carried in a cookie.

The token `POST /login` receives is the same kind the API's bearer clients get (tickets/auth.py:
hashed in the store, expiring, revoked at logout or when the account is disabled), so a page
and the API see one set of sessions. The cookie is HttpOnly (no script reads it) and
SameSite=Strict (another site's page cannot send it); on top, every state-changing request
must carry the CSRF token, an HMAC of the session token under the engine's secret, which a
page receives in its <meta> and htmx sends as a header. A forged or expired cookie is
treated as no cookie: the page asks to sign in again.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlsplit

from aiohttp import web

COOKIE = "hotline_session"
LANG_COOKIE = "hotline_lang"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf"


def csrf_token(key: bytes, session: str) -> str:
    return hmac.new(key, b"csrf:" + session.encode(), hashlib.sha256).hexdigest()


def csrf_ok(key: bytes, session: str, offered: str | None) -> bool:
    # compare_digest refuses (TypeError) a str that is not ASCII: such a token is simply wrong.
    return offered is not None and offered.isascii() and hmac.compare_digest(csrf_token(key, session), offered)


def token_key(token: str) -> str:
    """A session's key in memory (the page's session cache, the hub's streams per session):
    its SHA-256, as the store keeps it, so no token is held in the clear."""
    return hashlib.sha256(token.encode()).hexdigest()


def session_token(request: web.Request) -> str | None:
    token = request.cookies.get(COOKIE)
    # A token is 43 url-safe characters (secrets.token_urlsafe(32)); anything else is not looked up.
    if token is None or not (20 <= len(token) <= 128) or not token.isascii():
        return None
    return token


def set_session(resp: web.StreamResponse, request: web.Request, token: str, max_age: int) -> None:
    resp.set_cookie(COOKIE, token, max_age=max_age, path="/", httponly=True, samesite="Strict",
                    secure=request.secure)


def clear_session(resp: web.StreamResponse) -> None:
    resp.del_cookie(COOKIE, path="/")


def local_path(target: str | None, default: str = "/") -> str:
    """Where to go after signing in: only a path on this site (never //host or a scheme).

    Control characters are refused too: a browser drops tabs and newlines from a URL ("/<TAB>/x"
    is "//x" to it), and a CR or LF in a Location header would start a header of its own."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target \
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def login_url(next_path: str) -> str:
    return "/login?next=" + quote(local_path(next_path), safe="/")
