"""Real receivers on loopback for the alert tests: SMTP (aiosmtpd, STARTTLS + AUTH),
a Standard Webhooks endpoint that verifies signatures, and a Slack-shaped endpoint."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# aiosmtpd 1.4 logs a deprecation of its own ``Session.login_data`` on every login
# (through logging, not warnings): noise in the fault bench's output.
logging.getLogger("mail.log").setLevel(logging.ERROR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Mailbox:
    url: str
    ca_file: Path
    messages: list[EmailMessage] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.box.raw.append(envelope.content)
        msg = message_from_bytes(envelope.content, policy=policy.default)
        msg["X-Envelope-To"] = ",".join(envelope.rcpt_tos)
        msg["X-Received-At"] = f"{time.time():.3f}"
        self.box.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"


@contextmanager
def smtp_server(
    tmp: Path, user: str = "alerts", password: str = "s3cret-pass"
) -> Iterator[Mailbox]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    ca_file = tmp / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))

    def authenticate(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login == user.encode()
            and data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)  # failure: aiosmtpd answers 535

    port = free_port()
    box = Mailbox(url=f"smtp://{user}:{password}@127.0.0.1:{port}", ca_file=ca_file)
    controller = Controller(
        _Handler(box),
        hostname="127.0.0.1",
        port=port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticate,
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@dataclass
class HttpInbox:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests first
    always_fail: bool = False
    secret: str | None = None
    verified: int = 0
    rejected: int = 0


def _server(inbox: HttpInbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            inbox.requests.append({"headers": headers, "body": body, "at": time.time()})
            if inbox.always_fail or inbox.fail_first > 0:
                inbox.fail_first -= 1
                self.send_response(500)
                self.end_headers()
                return
            if inbox.secret is not None:
                try:
                    Webhook(inbox.secret).verify(body, headers)
                    inbox.verified += 1
                except WebhookVerificationError:
                    inbox.rejected += 1
                    self.send_response(400)
                    self.end_headers()
                    return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@contextmanager
def http_inbox(secret: str | None = None) -> Iterator[HttpInbox]:
    inbox = HttpInbox(url="")
    inbox.secret = secret
    server = _server(inbox)
    inbox.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox
    finally:
        server.shutdown()


def valid_block_kit(payload: dict[str, Any]) -> bool:
    """The shape Slack's incoming webhooks accept (a practical subset of Block Kit's rules)."""
    if not isinstance(payload.get("text"), str) or not payload["text"]:
        return False
    blocks = payload.get("blocks", [])
    if not isinstance(blocks, list) or not 0 < len(blocks) <= 50:
        return False
    for b in blocks:
        t = b.get("type")
        if t == "header":
            txt = b["text"]
            if txt["type"] != "plain_text" or not 0 < len(txt["text"]) <= 150:
                return False
        elif t == "section":
            if "text" in b and not 0 < len(b["text"]["text"]) <= 3000:
                return False
            if len(b.get("fields", [])) > 10:
                return False
            if any(not 0 < len(f["text"]) <= 2000 for f in b.get("fields", [])):
                return False
        elif t == "actions":
            if not all(
                e["type"] == "button" and e["url"].startswith("https://") for e in b["elements"]
            ):
                return False
        elif t == "context":
            if not 0 < len(b["elements"]) <= 10:
                return False
        else:
            return False
    return True


def bodies_text(mailbox: Mailbox | None, *inboxes: HttpInbox) -> bytes:
    blob = b"".join(mailbox.raw) if mailbox else b""
    for inbox in inboxes:
        blob += b"".join(r["body"] + json.dumps(r["headers"]).encode() for r in inbox.requests)
    return blob
