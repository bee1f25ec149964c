"""What each kind of channel is sent, and what its answer means.

- DingTalk's robot: a markdown message; with a secret, ``timestamp`` and ``sign`` (base64 of
  HMAC-SHA256 of ``"{ms}\\n{secret}"`` keyed by the secret) in the URL. It answers 200 with
  ``{"errcode": 0}``; any other errcode is a failure even with 200.
- Feishu's robot: an interactive card; signed in the body, ``timestamp`` (seconds) and ``sign``
  (base64 of HMAC-SHA256 with ``"{s}\\n{secret}"`` as the key, of nothing). ``{"code": 0}``.
- WeCom's robot: markdown; its key is in the URL. ``{"errcode": 0}``.
- ``webhook``: JSON of the run, with ``X-Toolrun-Signature`` (as hooks take it) and
  ``X-Toolrun-Delivery``, the outbox row's id, by which a receiver can tell a repeat.

Pure logic: delivery.py sends and reads the answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote_plus

from ..records import record
from .channels import Channel
from .messages import markdown, title
from .signing import sign

# Robots' own "too many messages" codes: wait a minute, as their documents ask.
RATE_LIMITED = {"dingtalk": {130101}, "wecom": {45009}, "feishu": {9499, 11232}}
CARD_COLOURS = {"succeeded": "green", "recovered": "green", "test": "blue"}


@record(frozen=True)
class Outgoing:
    url: str
    headers: dict[str, str]
    body: bytes


@record(frozen=True)
class Verdict:
    ok: bool
    error: str = ""
    retry_after: float | None = None  # seconds the channel asked us to wait
    permanent: bool = False  # retrying cannot help (a wrong URL)


def outgoing(
    channel: Channel,
    facts: dict[str, Any],
    *,
    mentions: tuple[str, ...],
    link: str | None,
    now: float,
    delivery: str,
) -> Outgoing:
    json_type = {"Content-Type": "application/json; charset=utf-8"}
    language = channel.language
    if channel.kind == "dingtalk":
        phones = [m for m in mentions if m.isdigit()]
        users = [m for m in mentions if not m.isdigit()]
        # A markdown message reaches someone only if the text names them too.
        named = " ".join(f"@{m}" for m in mentions) + (" @all" if channel.mention_all else "")
        body = {
            "msgtype": "markdown",
            "markdown": {
                "title": title(facts, language),
                "text": markdown(facts, language, link=link, mentions=named.strip()),
            },
            "at": {"atMobiles": phones, "atUserIds": users, "isAtAll": channel.mention_all},
        }
        url = channel.url
        if channel.secret:
            stamp = str(int(now * 1000))
            mac = hmac.new(channel.secret, f"{stamp}\n".encode() + channel.secret, hashlib.sha256)
            signature = quote_plus(base64.b64encode(mac.digest()))
            url += ("&" if "?" in url else "?") + f"timestamp={stamp}&sign={signature}"
        return Outgoing(url, json_type, _json(body))
    if channel.kind == "feishu":
        named = " ".join(f"<at id={m}></at>" for m in mentions)
        if channel.mention_all:
            named += " <at id=all></at>"
        card = {
            "config": {"wide_screen_mode": True},
            "header": {
                "title": {"tag": "plain_text", "content": title(facts, language)},
                "template": CARD_COLOURS.get(str(facts["event"]), "red"),
            },
            "elements": [
                {"tag": "markdown", "content": markdown(facts, language, link=link, mentions=named)}
            ],
        }
        feishu: dict[str, Any] = {"msg_type": "interactive", "card": card}
        if channel.secret:
            stamp = str(int(now))
            key = f"{stamp}\n".encode() + channel.secret
            feishu["timestamp"] = stamp
            feishu["sign"] = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        return Outgoing(channel.url, json_type, _json(feishu))
    if channel.kind == "wecom":
        named = " ".join(f"<@{m}>" for m in mentions)
        text = markdown(facts, language, link=link, mentions=named)
        return Outgoing(
            channel.url, json_type, _json({"msgtype": "markdown", "markdown": {"content": text}})
        )
    payload = _json({"event": facts["event"], "delivery": delivery, "link": link, "run": facts})
    headers = {
        **json_type,
        "X-Toolrun-Event": str(facts["event"]),
        "X-Toolrun-Delivery": delivery,
        "X-Toolrun-Signature": sign(channel.secret, payload, now),
    }
    return Outgoing(channel.url, headers, payload)


def _json(data: object) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def verdict(channel: Channel, status: int, headers: dict[str, str], body: bytes) -> Verdict:
    """What an answer means; ``headers`` has lower-case names."""
    text = body[:300].decode("utf-8", "replace").strip()
    if status == 429:
        return Verdict(False, f"HTTP 429: {text}", retry_after(headers.get("retry-after")))
    if status >= 500 or status == 408:
        return Verdict(False, f"HTTP {status}: {text}")
    if status >= 400:
        return Verdict(False, f"HTTP {status}: {text}", permanent=True)
    if status >= 300:
        return Verdict(False, f"HTTP {status} (a redirect; give the final URL)", permanent=True)
    if channel.kind == "webhook":
        return Verdict(True)
    try:
        answer = json.loads(body)
    except ValueError:
        return Verdict(False, f"HTTP {status} with an answer that is not JSON: {text}")
    if not isinstance(answer, dict):
        return Verdict(False, f"HTTP {status} with an unexpected answer: {text}")
    code = answer.get("errcode", answer.get("code", answer.get("StatusCode")))
    if code == 0:
        return Verdict(True)
    message = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
    error = f"{channel.kind} answered code {code}: {message}"
    wait = 60.0 if code in RATE_LIMITED.get(channel.kind, ()) else None
    return Verdict(False, error, wait)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        import time

        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
