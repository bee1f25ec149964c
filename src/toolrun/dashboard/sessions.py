"""Signing in from a browser: a token given once becomes a session cookie.

Browsers cannot send an ``Authorization`` header from a link or an ``EventSource``, so a
person signs in with their token once and the daemon keeps a session for it: a random id in
a cookie (HttpOnly, SameSite=Strict, Secure under TLS) that expires, held in the daemon's
memory only (a restart signs everyone out). The session carries the token's name, scope and
allow-list, so a page can do exactly what the token could. Forms carry a CSRF token that the
daemon also puts in a cookie of its own (a request from another site sends neither).
"""

from __future__ import annotations

import hmac
import secrets
import time

from ..config import TokenRef
from ..records import record

SESSION_COOKIE = "toolrun_session"
CSRF_COOKIE = "toolrun_csrf"
LANGUAGE_COOKIE = "toolrun_lang"
LIFETIME = 12 * 3600.0
MAX_SESSIONS = 10_000  # the oldest go first beyond this


@record(frozen=True)
class Session:
    name: str
    scope: str
    allow: tuple[str, ...]
    token_sha256: str  # a revoked token's sessions end with it
    expires: float


class Sessions:
    def __init__(self, lifetime: float = LIFETIME) -> None:
        self.lifetime = lifetime
        self._by_id: dict[str, Session] = {}

    def open(self, token: TokenRef) -> str:
        while len(self._by_id) >= MAX_SESSIONS:
            self._by_id.pop(next(iter(self._by_id)))
        session_id = secrets.token_urlsafe(32)
        self._by_id[session_id] = Session(
            token.name, token.scope, token.allow, token.sha256, time.time() + self.lifetime
        )
        return session_id

    def get(self, session_id: str | None, tokens: tuple[TokenRef, ...]) -> Session | None:
        """The session a cookie names, if it is one, has not expired, and its token is still
        in config.toml."""
        if not session_id or len(session_id) > 100:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        if session.expires < time.time() or not any(
            hmac.compare_digest(session.token_sha256, token.sha256) for token in tokens
        ):
            self._by_id.pop(session_id, None)
            return None
        return session

    def close(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_matches(cookie: str | None, form: str | None) -> bool:
    return bool(cookie and form) and hmac.compare_digest(str(cookie), str(form))
