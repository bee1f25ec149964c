"""sha256 of the small things every run hashes: a toolchain's text, a tool's file list."""

from __future__ import annotations


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` in hex, as ``hashlib.sha256(data).hexdigest()`` gives it.

    ``hashlib`` loads OpenSSL, 7 ms of ``toolrun exec``'s start on the build machines, to hash
    a few hundred bytes. CPython's own sha256 module gives the same digest and loads in a
    fraction of that. Large files (archives, installs) still go through ``hashlib``, whose
    OpenSSL code is the faster one per byte.
    """
    try:
        from _sha256 import sha256  # type: ignore[import-not-found]  # CPython 3.11
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found]  # CPython 3.12 and later
        except ImportError:
            from hashlib import sha256
    digest: str = sha256(data).hexdigest()
    return digest
