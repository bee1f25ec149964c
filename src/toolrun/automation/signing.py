"""toolrun's own signature, ``t=UNIX_SECONDS,v1=HEX``: HMAC-SHA256 of ``"{t}."`` and the body.
Hooks check it on what callers send (hooks.py); webhook channels put it on what toolrun sends
(formats.py), so a receiver checks it the same way."""

from __future__ import annotations

import hashlib
import hmac
import time


def mac(secret: bytes, stamp: str, body: bytes) -> str:
    return hmac.new(secret, f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, moment: float | None = None) -> str:
    """The ``X-Toolrun-Signature`` value for ``body``, made at ``moment`` (default now)."""
    stamp = str(int(time.time() if moment is None else moment))
    return f"t={stamp},v1={mac(secret, stamp, body)}"
