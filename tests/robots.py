"""Stand-ins for DingTalk's, Feishu's and WeCom's robots and for a webhook consumer, on
127.0.0.1: each checks what the real one checks (the access token or key, the signature and
how old its timestamp is, the message's shape) and answers as it does, in a 200 body."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "robot-access-token-1234"
HOUR = 3600


class Robots:
    """What each stand-in received, and how it is to answer next."""

    def __init__(self, secret: str, webhook_secret: str) -> None:
        self.secret = secret
        self.webhook_secret = webhook_secret
        self.received: list[dict[str, Any]] = []  # accepted messages: kind, body, headers, at
        self.refused: list[dict[str, Any]] = []
        self.mode = "ok"  # ok | down | busy (429 once, Retry-After: 1) | error (errcode)
        self.url = ""
        self.lock = threading.Lock()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m["kind"] == kind]

    def answer(
        self, kind: str, query: dict[str, list[str]], headers: Any, raw: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            mode = self.mode
            if mode == "busy":
                self.mode = "ok"
                return 429, {"Retry-After": "1"}, b'{"errcode": 130101, "errmsg": "send too fast"}'
        if mode == "down":
            return 503, {}, b"<html>503 Service Temporarily Unavailable</html>"
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {}, b"not json"
        problem = {
            "dingtalk": self.dingtalk,
            "feishu": self.feishu,
            "wecom": self.wecom,
            "webhook": self.webhook,
        }[kind](query, headers, raw, body)
        if mode == "error" and problem is None:
            problem = (310000, "keywords not in content")
        entry = {"kind": kind, "body": body, "headers": dict(headers), "at": time.time()}
        if problem is not None:
            self.refused.append({**entry, "problem": problem})
            code, message = problem
            if kind == "webhook":
                return 401, {}, message.encode()
            key = "code" if kind == "feishu" else "errcode"
            other = "msg" if kind == "feishu" else "errmsg"
            return 200, {}, json.dumps({key: code, other: message}).encode()
        self.received.append(entry)
        if kind == "feishu":
            return 200, {}, b'{"code": 0, "msg": "success", "data": {}}'
        if kind == "webhook":
            return 204, {}, b""
        return 200, {}, b'{"errcode": 0, "errmsg": "ok"}'

    def dingtalk(
        self, query: dict[str, list[str]], headers: Any, raw: bytes, body: Any
    ) -> tuple[int, str] | None:
        if query.get("access_token") != [TOKEN]:
            return 300001, "token is not exist"
        stamp, signature = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
        if not stamp.isdigit() or abs(time.time() * 1000 - int(stamp)) > HOUR * 1000:
            return 310000, "invalid timestamp"
        secret = self.secret.encode()
        expected = base64.b64encode(
            hmac.new(secret, f"{stamp}\n".encode() + secret, hashlib.sha256).digest()
        ).decode()
        # parse_qs decoded the query once already, as DingTalk's server does.
        if not hmac.compare_digest(signature, expected):
            return 310000, "sign not match"
        if body.get("msgtype") != "markdown" or not {"title", "text"} <= set(body["markdown"]):
            return 40035, "missing parameter"
        return None

    def feishu(
        self, query: dict[str, list[str]], headers: Any, raw: bytes, body: Any
    ) -> tuple[int, str] | None:
        stamp, signature = str(body.get("timestamp", "")), str(body.get("sign", ""))
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > HOUR:
            return 19021, "sign match fail or timestamp is not within one hour from current time"
        key = f"{stamp}\n{self.secret}".encode()
        expected = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
        if not hmac.compare_digest(signature, expected):
            return 19021, "sign match fail or timestamp is not within one hour from current time"
        if body.get("msg_type") != "interactive" or "card" not in body:
            return 9499, "Bad Request"
        return None

    def wecom(
        self, query: dict[str, list[str]], headers: Any, raw: bytes, body: Any
    ) -> tuple[int, str] | None:
        if query.get("key") != [TOKEN]:
            return 93000, "invalid webhook url"
        if body.get("msgtype") != "markdown":
            return 40008, "invalid message type"
        if len(body["markdown"]["content"].encode()) > 4096:
            return 40058, "markdown.content exceed max length 4096"
        return None

    def webhook(
        self, query: dict[str, list[str]], headers: Any, raw: bytes, body: Any
    ) -> tuple[int, str] | None:
        parts = dict(
            p.partition("=")[::2] for p in headers.get("X-Toolrun-Signature", "").split(",")
        )
        stamp = parts.get("t", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return 401, "stale or missing signature"
        mac = hmac.new(self.webhook_secret.encode(), f"{stamp}.".encode() + raw, hashlib.sha256)
        if not hmac.compare_digest(parts.get("v1", ""), mac.hexdigest()):
            return 401, "bad signature"
        return None


@contextmanager
def robots(
    secret: str = "SEC-dingtalk-and-feishu-secret",
    webhook_secret: str = "webhook-secret-0123456789",
) -> Iterator[Robots]:
    state = Robots(secret, webhook_secret)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            kind = parts.path.strip("/").split("/")[0]
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            status, headers, body = state.answer(kind, parse_qs(parts.query), self.headers, raw)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def config_for(state: Robots, folder: Any, *, rules: str, extra: str = "") -> str:
    """config.toml naming the four stand-ins as channels, with ``rules``."""
    (folder / "robot.secret").write_text(state.secret)
    (folder / "webhook.secret").write_text(state.webhook_secret)
    return (
        f"{extra}"
        f"[[channels]]\nname = 'ding'\nkind = 'dingtalk'\n"
        f"url = '{state.url}/dingtalk/robot/send?access_token={TOKEN}'\n"
        f"secret_file = '{folder / 'robot.secret'}'\nmention = ['13800000000', 'mei']\n"
        f"[[channels]]\nname = 'lark'\nkind = 'feishu'\nlanguage = 'zh_CN'\n"
        f"url = '{state.url}/feishu/open-apis/bot/v2/hook/abc'\n"
        f"secret_file = '{folder / 'robot.secret'}'\n"
        f"[[channels]]\nname = 'wx'\nkind = 'wecom'\n"
        f"url = '{state.url}/wecom/cgi-bin/webhook/send?key={TOKEN}'\n"
        f"[[channels]]\nname = 'hook'\nkind = 'webhook'\nurl = '{state.url}/webhook/in'\n"
        f"secret_file = '{folder / 'webhook.secret'}'\n"
        f"{rules}"
    )
