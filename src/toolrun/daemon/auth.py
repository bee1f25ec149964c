"""Bearer tokens: made once, stored as a sha256, checked in constant time, scoped.

A token's secret is shown to its creator once and never kept: config.toml holds its hash, so
reading the config gives no one a way in. Scopes nest: read < run < admin.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from ..config import TOKEN_SCOPES, TokenRef
from ..records import record

SCOPE_RANK = {scope: rank for rank, scope in enumerate(TOKEN_SCOPES)}
PREFIX = "trk_"


@record(frozen=True)
class Caller:
    """Who a request comes from: a token's holder, or anyone on loopback when no token exists."""

    name: str  # the token's name, or the client's address
    scope: str
    allow: tuple[str, ...] = ()

    def has(self, scope: str) -> bool:
        return SCOPE_RANK[self.scope] >= SCOPE_RANK[scope]

    def may_run(self, target: str) -> bool:
        return not self.allow or target in self.allow


def new_token(name: str, scope: str, allow: tuple[str, ...]) -> tuple[str, TokenRef]:
    """A fresh secret and the record that config.toml keeps of it."""
    secret = PREFIX + secrets.token_urlsafe(32)
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return secret, TokenRef(name, digest(secret), scope, allow, created)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class TokenBook:
    def __init__(self, tokens: tuple[TokenRef, ...]) -> None:
        self.tokens = tokens

    @property
    def required(self) -> bool:
        return bool(self.tokens)

    def identify(self, authorization: str | None) -> TokenRef | None:
        """The token an ``Authorization: Bearer ...`` header carries, or None."""
        if not authorization:
            return None
        kind, _, secret = authorization.partition(" ")
        if kind.lower() != "bearer" or not secret.strip():
            return None
        presented = digest(secret.strip())
        found = None
        # Compare against every token, whatever matches, so the time taken says nothing.
        for token in self.tokens:
            if hmac.compare_digest(presented, token.sha256):
                found = token
        return found
