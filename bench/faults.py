"""Fault bench: the whole background deployment under the faults production has.

Starts, as real processes on this machine: a Redis with AOF fsynced on every write
(``appendfsync always``, as deployed; its own
port and directory, so it can be killed and restarted), the broker (that Redis,
or a RabbitMQ vhost of its own), the reference key service, the GitHub simulator
(planting keys it mints through the key service), alert receivers (a signed
webhook, a Slack-shaped endpoint, an SMTP server with STARTTLS), one
``keysweep worker`` per queue (poll, fetch, act, notify) and ``keysweep beat``,
each under a supervisor that restarts it when it dies. It drives planted
traffic through it and injects one fault per scenario:

* ``baseline``        no fault
* ``sigkill``         SIGKILL of a whole worker (main process and pool) every
                      10-15 s, each queue's worker in turn, beat included
* ``redis-restart``   Redis SIGKILLed and started again on its AOF (connections
                      drop mid-command; a reply may never arrive)
* ``keyservice-60s``  the key service down for 60 s
* ``keyservice-45min`` the key service down for 45 min, time-compressed: the
                      outage is ``--long-outage`` seconds and the longest wait
                      between two probes is scaled by the same factor, so the
                      parked work goes through as many probes as in 45 minutes
* ``github-limits``   429 and 403 storms with ``retry-after``, exhausted tokens
                      and secondary limits on every endpoint the workers use
* ``duplicates``      events delivered again (older events back on top of the
                      feed: reordered) and every pending message sent twice
* ``notify-kills``    (only when named in ``--scenarios``) SIGKILL of the notify
                      worker every 1-2 s: measures the one remaining window where
                      an alert message is received twice (column ``resent``)

Per scenario it prints: keys planted, revoked, lost (never revoked), never
alerted (revoked, but the security team's webhook or Slack channel, or the key's
owner by email, never heard of it: an alert lost; the summary line counts it in
``lost``), revoked
twice (more than one ``api_key.revoked`` audit event), alerted twice (a key
alarmed about in two different messages on the webhook or to the owner's inbox),
resent (an alarm message received again under its own Standard Webhooks
``webhook-id`` or ``Message-ID``: a redelivery, not a second alert), recovery (s from
the fault cleared to the last planted key revoked), GitHub requests sent before
they were allowed (the simulator counts requests that arrive during a wait it
declared, past a 0.25 s allowance for requests already on their way), and
planted keys found in cleartext (raw, base64, hex, UTF-16) anywhere written:
the broker (Redis dump and AOF, or RabbitMQ's data directory), logs, metrics,
the key-service database with its WAL, alert bodies.

Targets: 0 lost, 0 twice, 0 early, 0 cleartext, recovery <= 120 s. The last
lines, one per broker, are ``faults broker=B lost=.. twice=.. early=..
cleartext=.. recovery_s=..``; the exit code is 1 when a target is missed.

    python bench/faults.py --quick                  # every scenario briefly, each broker
    python bench/faults.py --brokers redis --scenarios sigkill,redis-restart
    python bench/faults.py --brokers redis --scenarios notify-kills   # the resend window
    python bench/faults.py                          # full length (about an hour)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.notify_receivers import HttpInbox, Mailbox, http_inbox, smtp_server  # noqa: E402
from tests.procs import spawn, wait_until_healthy  # noqa: E402
from tests.sim.fixture import GitHubSim, start_sim  # noqa: E402

warnings.filterwarnings("ignore", message="Session.login_data")
KEYSWEEP = shutil.which("keysweep", path=os.path.dirname(sys.executable)) or "keysweep"
SCENARIOS = (
    "baseline",
    "sigkill",
    "duplicates",
    "github-limits",
    "keyservice-60s",
    "keyservice-45min",
    "redis-restart",
)
RECOVERY_TARGET = 120.0
RABBIT = os.environ.get("KEYSWEEP_BENCH_RABBITMQ", "127.0.0.1:5672")
RABBIT_DATA = Path(os.environ.get("KEYSWEEP_BENCH_RABBITMQ_DATA", "/var/lib/rabbitmq/mnesia"))


@dataclass(frozen=True)
class Profile:
    """How long each part runs (seconds)."""

    traffic: float  # planted traffic per scenario
    rate: float  # documents per second
    plant_every: int
    kill_every: tuple[float, float]  # SIGKILL spacing
    kills: int
    outage: float  # keyservice-60s
    long_outage: float  # keyservice-45min, compressed
    probe_max: float  # longest wait between probes of parked work at this compression
    lease: float
    grace: float
    settle: float  # longest wait for the stack to be idle between scenarios


FULL = Profile(120, 50, 10, (10, 15), 12, 60, 2700, 60, 30, 60, 300)
QUICK = Profile(10, 30, 10, (10, 15), 3, 10, 30, 60 * 30 / 2700, 8, 15, 90)
# The suite's version: seconds, not minutes. 15 documents/s keeps GitHub's 300-event
# feed about 16 s deep, longer than a poll gap two kills 4-6 s apart can make here.
TEST = Profile(5, 15, 4, (4, 6), 4, 6, 15, 0.5, 5, 8, 60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rabbitmq_answers() -> bool:
    host, _, port = RABBIT.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


# --- the stack ------------------------------------------------------------------------------


class RedisServer:
    """redis-server with AOF fsynced on every write (as deployed) in a directory of its own."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdout=open(self.dir / "redis.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                if self.client().ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer")

    def client(self, db: int = 1) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, decode_responses=True, socket_timeout=10)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def files(self) -> bytes:
        """The dump (BGSAVE now) and every AOF file."""
        with contextlib.suppress(redis.RedisError):
            self.client().bgsave()
            deadline = time.time() + 10
            while time.time() < deadline and self.client().info("persistence").get(
                "rdb_bgsave_in_progress"
            ):
                time.sleep(0.1)
        return b"".join(p.read_bytes() for p in self.dir.rglob("*") if p.is_file())


class KeyServiceProc:
    """The reference key service on a fixed port, so it can go down and come back."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = self.dir / "keyservice.sqlite3"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        port_file = self.dir / "ks.url"
        port_file.unlink(missing_ok=True)
        env = {**os.environ, "KEYSERVICE_TOKEN": self.token, "PYTHONUNBUFFERED": "1"}
        log = self.dir / f"keyservice-{int(time.time() * 1000)}.log"
        self.proc = spawn(
            [
                sys.executable,
                str(ROOT / "deploy" / "keyservice" / "server.py"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--db",
                str(self.db_path),
                "--port-file",
                str(port_file),
            ],
            env,
            log,
        )
        wait_until_healthy(
            self.proc,
            port_file,
            log,
            health="/healthz",
            name="key service",
            error=RuntimeError,
            timeout=30,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=60
        )

    def files(self) -> bytes:
        return b"".join(p.read_bytes() for p in self.dir.glob("keyservice.sqlite3*"))


class Supervised:
    """A process started in its own session and restarted whenever it exits."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> None:
        self.name, self.argv, self.env = name, argv, env
        self.log = logdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        with open(self.log, "ab") as fh:
            self.proc = subprocess.Popen(
                [KEYSWEEP, *self.argv],
                env=self.env,
                stdout=fh,
                stderr=fh,
                start_new_session=True,
                cwd=ROOT,
            )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.kill(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)
            self.proc.wait(10)


class Stack:
    def __init__(self, tmp: Path, broker: str, profile: Profile) -> None:
        self.tmp, self.broker, self.profile = tmp, broker, profile
        self.logdir = tmp / "logs"
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(tmp / "redis")
        self.ks = KeyServiceProc(tmp / "keyservice")
        self.procs: dict[str, Supervised] = {}
        self.stopping = threading.Event()
        self.prefix = f"ksfault-{secrets.token_hex(4)}"
        self.vhost = f"keysweep-faults-{secrets.token_hex(4)}"
        self.metrics_ports: dict[str, int] = {}
        self.seen_counts: dict[str, int] = {}
        self.seen_doubles: set[str] = set()  # alarms already reported more than once
        self.sim: GitHubSim | None = None
        self.hook: HttpInbox | None = None
        self.slack: HttpInbox | None = None
        self.mail: Mailbox | None = None
        self._exit = contextlib.ExitStack()

    # -- lifecycle --

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        self.redis.start()
        self.ks.start()
        if self.broker == "rabbitmq":
            for cmd in (
                ["rabbitmqctl", "add_vhost", self.vhost],
                ["rabbitmqctl", "set_permissions", "-p", self.vhost, "guest", ".*", ".*", ".*"],
            ):
                subprocess.run(cmd, check=True, capture_output=True, timeout=60)
            broker_url = f"amqp://guest:guest@{RABBIT}/{self.vhost}"
        else:
            broker_url = f"redis://127.0.0.1:{self.redis.port}/0"
        self.sim = self._exit.enter_context(
            start_sim(self.tmp / "sim", self.ks, poll_interval=1, seed=7)
        )
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        self.hook = self._exit.enter_context(http_inbox(secret))
        self.slack = self._exit.enter_context(http_inbox())
        self.mail = self._exit.enter_context(smtp_server(self.tmp))
        host = self.sim.url.split("://", 1)[1]
        p = self.profile
        self.env = {
            **os.environ,
            "KEYSWEEP_BROKER_URL": broker_url,
            "KEYSWEEP_REDIS_URL": f"redis://127.0.0.1:{self.redis.port}/1",
            "KEYSWEEP_REDIS_PREFIX": self.prefix,
            "KEYSWEEP_GITHUB_API_URL": self.sim.url,
            "KEYSWEEP_GITHUB_TOKENS": "sim-token-1,sim-token-2",
            "KEYSWEEP_CLONE_HTTP_HOSTS": host,
            "KEYSWEEP_POLL_EVERY": "0.5",
            "KEYSWEEP_KEYSERVICE_URL": self.ks.url,
            "KEYSWEEP_KEYSERVICE_TOKEN": self.ks.token,
            "KEYSWEEP_NOTIFY_WEBHOOK_URL": self.hook.url,
            "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            "KEYSWEEP_NOTIFY_SLACK_URL": self.slack.url,
            "KEYSWEEP_SMTP_URL": self.mail.url,
            "SSL_CERT_FILE": str(self.mail.ca_file),
            "KEYSWEEP_STATE_DIR": str(self.tmp / "state"),
            "KEYSWEEP_LEDGER_LEASE": str(p.lease),
            "KEYSWEEP_LEDGER_GRACE": str(p.grace),
            "KEYSWEEP_SWEEP_EVERY": "1",
            "KEYSWEEP_PARK_PROBE_MAX": str(p.probe_max),
            "PYTHONUNBUFFERED": "1",
        }
        roles = {
            "poll": ["worker", "-Q", "poll", "-c", "1"],
            "fetch": ["worker", "-Q", "fetch", "-c", "2"],
            "act": ["worker", "-Q", "act", "-c", "1"],
            "notify": ["worker", "-Q", "notify", "-c", "1"],
            "beat": ["beat"],
        }
        for name, argv in roles.items():
            env = dict(self.env)
            if name != "beat":
                argv = [*argv, "-n", f"{name}@%h"]
                self.metrics_ports[name] = free_port()
                env["KEYSWEEP_METRICS_PORT"] = str(self.metrics_ports[name])
                env["PROMETHEUS_MULTIPROC_DIR"] = str(self.tmp / f"metrics-{name}")
                env["KEYSWEEP_HEARTBEAT_FILE"] = str(self.tmp / f"alive-{name}")
            else:
                env["PROMETHEUS_MULTIPROC_DIR"] = str(self.tmp / "metrics-beat")
            self.procs[name] = Supervised(name, argv, env, self.logdir)
            self.procs[name].start()
        threading.Thread(target=self._supervise, daemon=True).start()

    def _supervise(self) -> None:
        while not self.stopping.wait(0.2):
            for sup in self.procs.values():
                if sup.proc is not None and sup.proc.poll() is not None:
                    time.sleep(0.3)  # a supervisor's restart delay
                    if self.stopping.is_set():
                        return
                    sup.restarts += 1
                    sup.start()

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for sup in self.procs.values():
            sup.stop()
        self._exit.close()
        self.ks.stop()
        self.redis.stop()
        if self.broker == "rabbitmq":
            subprocess.run(
                ["rabbitmqctl", "delete_vhost", self.vhost], capture_output=True, timeout=60
            )

    # -- reading it --

    def state(self) -> redis.Redis:
        return self.redis.client(1)

    def ledger(self) -> dict[str, int]:
        r = self.state()
        return {
            "pending": int(r.zcard(f"{self.prefix}:ledger:due")),
            "parked": int(r.zcard(f"{self.prefix}:ledger:parked")),
            "dead": int(r.zcard(f"{self.prefix}:ledger:dead")),
        }

    def idle(self) -> bool:
        try:
            led = self.ledger()
        except redis.RedisError:
            return False
        return led["pending"] == 0 and led["parked"] == 0

    def statuses(self, keys: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        with self.ks.http() as http:
            for i in range(0, len(keys), 500):
                batch = [k["sha256"] for k in keys[i : i + 500]]
                r = http.post("/v1/keys/lookup", json={"hashes": batch})
                r.raise_for_status()
                out.update({m["sha256"]: m for m in r.json()["matches"]})
        return out

    def revoked_events(self) -> Counter[str]:
        with self.ks.http() as http:
            events = http.get("/v1/audit-events", params={"action": "api_key.revoked"}).json()
        return Counter(e["target"] for e in events["events"])

    def webhook_alarm_requests(self) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Each alarm (not follow-up) the security team's webhook received: (the request,
        the key of each alarm it carries; a summary carries several)."""
        assert self.hook is not None
        for r in list(self.hook.requests):
            try:
                body = json.loads(r["body"])
            except ValueError:
                continue
            if body.get("type") == "keysweep.leak":
                yield r, [body["data"]["key"]]
            elif body.get("type") == "keysweep.leak.summary":
                yield r, [a["key"] for a in body["data"]["alerts"]]

    def webhook_alarms(self) -> Iterator[dict[str, Any]]:
        """The key of each alarm (not follow-up) the webhook received, a summary's one per key."""
        for _, keys in self.webhook_alarm_requests():
            yield from keys

    def alarm_messages(self) -> list[tuple[float, str, list[str]]]:
        """Every alarm message (not a follow-up) received: (when, message id, the
        channel and key of each alarm it carries; a summary carries several).

        The id is the Standard Webhooks ``webhook-id`` or the email's ``Message-ID``:
        the same for a message sent again (a redone task), another for another message.
        """
        assert self.mail is not None
        out: list[tuple[float, str, list[str]]] = []
        for r, keys in self.webhook_alarm_requests():
            ident = "webhook " + str(r["headers"].get("webhook-id", ""))
            alarms = ["webhook " + k["fingerprint"][:12] for k in keys]
            out.append((float(r.get("at", 0.0)), ident, alarms))
        for m in list(self.mail.messages):
            subject = str(m.get("Subject", ""))
            if "follow" not in subject.lower():
                alarm = f"email {m.get('X-Envelope-To')} {subject}"
                ident = f"email {m.get('Message-ID')}"
                out.append((float(m.get("X-Received-At") or 0), ident, [alarm]))
        return out

    def doubles(self) -> tuple[int, int, dict[str, str]]:
        """(alarms told in two different messages: twice; messages received again under
        their own id: resent; what each double was). A message received again is a
        redelivery, which a receiver deduplicating on its id keeps once."""
        messages = sorted(self.alarm_messages())
        resent = len(messages) - len({ident for _, ident, _ in messages})
        copies: dict[str, list[tuple[float, str]]] = {}
        for at, ident, alarms in messages:
            for alarm in alarms:
                copies.setdefault(alarm, []).append((at, ident))
        twice = 0
        what = {}
        for alarm, got in copies.items():
            if len(got) > 1:
                ids = len({i for _, i in got})
                twice += ids > 1
                what[alarm] = (
                    f"{alarm[:60]} x{len(got)} {'same id' if ids == 1 else f'{ids} ids'} "
                    f"{got[-1][0] - got[0][0]:.1f}s apart"
                )
        return twice, resent, what

    def alerted(self) -> set[str]:
        """Display prefixes of the keys the security team's webhook has alarmed about."""
        return {key["redacted"].rstrip("…") for key in self.webhook_alarms()}

    def untold(self, prefixes: list[str]) -> dict[str, list[str]]:
        """Per channel, the keys (display prefixes) it was never told about: the
        security team's webhook (an alarm) and Slack channel, and the key's owner by
        email (every planted key is the key service's, with an owner's address)."""
        assert self.slack is not None and self.mail is not None
        webhook = self.alerted()
        slack = "\n".join(r["body"].decode("utf-8", "replace") for r in list(self.slack.requests))
        mail = []
        for m in list(self.mail.messages):
            body = m.get_body(preferencelist=("plain",))
            mail.append(str(m.get("Subject", "")) + "\n" + (body.get_content() if body else ""))
        email = "\n".join(mail)
        return {
            "webhook": [p for p in prefixes if p not in webhook],
            "slack": [p for p in prefixes if p not in slack],
            "email": [p for p in prefixes if p not in email],
        }

    def written(self) -> bytes:
        """Everything the system wrote that a key must never reach."""
        parts = [self.redis.files(), self.ks.files()]
        parts += [p.read_bytes() for p in self.logdir.glob("*.log")]
        parts += [p.read_bytes() for p in (self.tmp / "keyservice").glob("*.log")]
        for port in self.metrics_ports.values():
            with contextlib.suppress(httpx.HTTPError):
                parts.append(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).content)
        assert self.hook is not None and self.slack is not None and self.mail is not None
        for inbox in (self.hook, self.slack):
            parts += [r["body"] + json.dumps(r["headers"]).encode() for r in inbox.requests]
        parts += list(self.mail.raw)
        if self.broker == "rabbitmq":
            parts.append(rabbitmq_files())
        return b"".join(parts)


def rabbitmq_files() -> bytes:
    """RabbitMQ's data directory (its message stores and quorum-queue logs)."""
    out = []
    for p in RABBIT_DATA.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file() and p.stat().st_size < 256 << 20:
                out.append(p.read_bytes())
    return b"".join(out)


def encodings(key: str) -> list[bytes]:
    raw = key.encode()
    forms = [raw, raw.hex().encode(), key.encode("utf-16-le")]
    for shift in range(3):  # base64 of the key at each alignment inside a larger blob
        b = base64.b64encode(b"\0" * shift + raw)[4 if shift else 0 :]
        forms.append(b[: len(b) - 4])
    return forms


def cleartext(blob: bytes, keys: list[str]) -> int:
    return sum(any(form in blob for form in encodings(k)) for k in keys)


# --- scenarios ------------------------------------------------------------------------------


@dataclass
class Result:
    broker: str
    scenario: str
    planted: int = 0
    revoked: int = 0
    lost: int = 0
    unalerted: int = 0
    revoked_twice: int = 0
    alerted_twice: int = 0
    resent: int = 0  # an alarm received again under its own id (not a second alert)
    recovery_s: float = 0.0
    early: int = 0
    cleartext: int = 0
    restarts: dict[str, int] = field(default_factory=dict)  # supervisor restarts per role
    notes: list[str] = field(default_factory=list)

    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.unalerted == 0
            and self.revoked_twice == 0
            and self.alerted_twice == 0
            and self.early == 0
            and self.cleartext == 0
            and self.recovery_s <= RECOVERY_TARGET
        )

    def line(self) -> str:
        return (
            f"{self.broker:<9} {self.scenario:<17} {self.planted:>7} {self.revoked:>7} "
            f"{self.lost:>5} {self.unalerted:>9} {self.revoked_twice:>6} {self.alerted_twice:>7} "
            f"{self.resent:>6} {self.recovery_s:>9.1f} {self.early:>6} {self.cleartext:>9}"
            + (f"  {'; '.join(self.notes)}" if self.notes else "")
        )


HEADER = (
    f"{'broker':<9} {'scenario':<17} {'planted':>7} {'revoked':>7} {'lost':>5} "
    f"{'never':>9} {'twice':>6} {'alerted':>7} {'resent':>6} {'recovery':>9} {'early':>6} "
    f"{'cleartext':>9}\n"
    f"{'':<9} {'':<17} {'':>7} {'':>7} {'':>5} {'alerted':>9} {'':>6} {'twice':>7} {'':>6} "
    f"{'s':>9} "
    f"{'':>6} {'':>9}"
)


def _traffic(stack: Stack, seconds: float, during: Callable[[], None] | None = None) -> None:
    assert stack.sim is not None
    p = stack.profile
    stack.sim.set_rate(p.rate, plant_every=p.plant_every, plant_kinds=["live", "test"])
    try:
        if during is not None:
            during()
        else:
            time.sleep(seconds)
    finally:
        stack.sim.set_rate(0)


def fault_sigkill(stack: Stack) -> float:
    p = stack.profile
    order = ["fetch", "act", "beat", "notify", "poll"]

    def kills() -> None:
        # p.kills rounds; each round SIGKILLs the next roles in turn, so every role
        # (each queue's worker and beat) is killed at least once.
        per_round = -(-len(order) // p.kills) if p.kills < len(order) else 1
        at = 0
        for _ in range(p.kills):
            time.sleep(random.uniform(*p.kill_every))
            for _ in range(per_round):
                stack.procs[order[at % len(order)]].kill()
                at += 1

    _traffic(stack, 0, kills)
    return time.time()


def fault_notify_kills(stack: Stack) -> float:
    """SIGKILL of the notify worker every 1-2 s through the traffic: how often an alert
    message is received twice (the worker dies after the receiver took it and before
    its claim is marked sent; the redo sends it again under the same id)."""

    def kills() -> None:
        end = time.time() + stack.profile.traffic
        while time.time() < end:
            time.sleep(random.uniform(1.0, 2.0))
            stack.procs["notify"].kill()

    _traffic(stack, 0, kills)
    return time.time()


def fault_redis_restart(stack: Stack) -> float:
    def restart() -> None:
        time.sleep(stack.profile.traffic / 2)
        stack.redis.kill()
        time.sleep(0.5)
        stack.redis.start()
        time.sleep(stack.profile.traffic / 2)

    _traffic(stack, 0, restart)
    return time.time()


def _outage(stack: Stack, seconds: float) -> float:
    """A burst of planted documents, then the key service goes down while they are in
    flight; traffic goes on during the outage (third-party keys: the simulator mints
    our keys through the key service, so it cannot plant them while it is down)."""
    assert stack.sim is not None
    sim, p = stack.sim, stack.profile
    n = max(10, int(p.rate * p.traffic / p.plant_every))
    sim.generate(pushes=2 * n, gists=n, plant={"live": n, "test": n // 2})
    stack.ks.stop()
    sim.set_rate(p.rate, plant_every=p.plant_every, plant_kinds=["third_party"])
    try:
        time.sleep(seconds)
    finally:
        sim.set_rate(0)
    stack.ks.start()
    return time.time()


def fault_keyservice_short(stack: Stack) -> float:
    return _outage(stack, stack.profile.outage)


def fault_keyservice_long(stack: Stack) -> float:
    return _outage(stack, stack.profile.long_outage)


def fault_github_limits(stack: Stack) -> float:
    assert stack.sim is not None
    sim = stack.sim

    def storms() -> None:
        # Limits on every endpoint the workers use. The /events poller is held back
        # only briefly: GitHub's feed keeps 300 events (about 8 s of this traffic), so
        # a longer stall loses events for good whatever the client does (counted as
        # keysweep_events_missed_total, shown in the notes).
        t = stack.profile.traffic
        sim.fault("/repos", 429, retry_after=2, count=15)
        sim.fault("/gists", 429, retry_after=2, count=10)
        sim.fault("/events", 429, retry_after=2, count=1)
        time.sleep(t / 3)
        sim.fault("/repos", 403, retry_after=3, count=10)  # exhausted: remaining 0, reset +3
        sim.fault("/gists/", 403, retry_after=2, count=3, secondary=True)
        time.sleep(t / 3)
        sim.fault("/", 403, retry_after=2, count=1, secondary=True)
        sim.fault("/repos", 429, retry_after=1, count=10)
        time.sleep(t / 3)

    _traffic(stack, 0, storms)
    deadline = time.time() + 60
    while time.time() < deadline and sim.stats()["faults_pending"]:
        time.sleep(0.5)
    return time.time()


def fault_duplicates(stack: Stack) -> float:
    assert stack.sim is not None
    sim = stack.sim

    def dupes() -> None:
        time.sleep(stack.profile.traffic / 2)
        resend_pending(stack)
        pushes = [p["doc"]["event_id"] for p in sim.planted() if p["doc"].get("event_id")]
        for ev in random.sample(pushes, min(10, len(pushes))):
            with contextlib.suppress(Exception):
                sim.duplicate(ev)  # an older event on top of the feed again
        time.sleep(stack.profile.traffic / 2)
        resend_pending(stack)

    _traffic(stack, 0, dupes)
    return time.time()


def resend_pending(stack: Stack) -> int:
    """Every piece of pending work sent once more: duplicate deliveries."""
    code = (
        "from workers import ledger, state\n"
        "r = state.client()\n"
        "ids = r.zrange(ledger.k('due'), 0, -1)\n"
        "import json\n"
        "n = 0\n"
        "for i in ids:\n"
        "    h = r.hgetall(ledger.k('item', i))\n"
        "    if h:\n"
        "        n += ledger.publish(ledger.Work(i, h['task'], h['queue'], "
        "json.loads(h['kwargs'])))\n"
        "print(n)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=stack.env, capture_output=True, timeout=60, cwd=ROOT
    )
    return int(out.stdout.strip() or 0)


def fault_none(stack: Stack) -> float:
    _traffic(stack, stack.profile.traffic)
    return time.time()


FAULTS: dict[str, Callable[[Stack], float]] = {
    "baseline": fault_none,
    "sigkill": fault_sigkill,
    "redis-restart": fault_redis_restart,
    "keyservice-60s": fault_keyservice_short,
    "keyservice-45min": fault_keyservice_long,
    "github-limits": fault_github_limits,
    "duplicates": fault_duplicates,
    "notify-kills": fault_notify_kills,  # opt-in (--scenarios notify-kills): a window's size
}


def wait_idle(stack: Stack, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if stack.idle():
            return True
        time.sleep(0.5)
    return False


def iso_epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run_scenario(stack: Stack, name: str) -> Result:
    assert stack.sim is not None
    sim = stack.sim
    res = Result(stack.broker, name)
    wait_idle(stack, stack.profile.settle)
    sim.reset(stats_only=True)
    t0 = time.time()
    cleared = FAULTS[name](stack)
    planted = [p for p in sim.planted(since=t0) if p["kind"] in ("live", "test")]
    res.planted = len(planted)
    deadline = cleared + RECOVERY_TARGET + 15
    st: dict[str, dict[str, Any]] = {}
    while time.time() < deadline:
        st = stack.statuses(planted) if planted else {}
        if all(st.get(p["sha256"], {}).get("status") == "revoked" for p in planted):
            break
        time.sleep(1)
    revoked = [p for p in planted if st.get(p["sha256"], {}).get("status") == "revoked"]
    res.revoked = len(revoked)
    res.lost = res.planted - res.revoked
    for p in planted:
        if st.get(p["sha256"], {}).get("status") != "revoked":
            d = p["doc"]
            res.notes.append(
                f"lost {d['type']} {d.get('repo') or ''} {d.get('gist_id') or ''} "
                f"ev={d.get('event_id')} sha={str(d.get('sha'))[:12]}"
            )
    if revoked:
        last = max(iso_epoch(st[p["sha256"]]["revoked_at"]) for p in revoked)
        res.recovery_s = max(0.0, last - cleared)
    if res.lost:
        res.recovery_s = max(res.recovery_s, time.time() - cleared)
    # Every revoked key reaches the security team's webhook and Slack channel and its
    # owner's inbox (an alert lost if any never does).
    prefixes = [p["display_prefix"] for p in revoked]
    while time.time() < deadline and any(stack.untold(prefixes).values()):
        time.sleep(1)
    untold = stack.untold(prefixes)
    res.unalerted = len(set().union(*map(set, untold.values())))
    if res.unalerted:
        res.notes.append(
            "never told: " + ", ".join(f"{ch} {len(v)}" for ch, v in untold.items() if v)
        )
    # Let the alerts and audits in flight land before counting twice.
    wait_idle(stack, 30)
    per_key = stack.revoked_events()
    res.revoked_twice = sum(1 for p in planted if per_key.get(p["display_prefix"], 0) > 1)
    # Counted over the stack's whole life (a late redo may resend an earlier scenario's
    # message), reported as what is new since the last scenario.
    twice, resent, doubles = stack.doubles()
    res.alerted_twice = twice - stack.seen_counts.get("alerted_twice", 0)
    res.resent = resent - stack.seen_counts.get("resent_messages", 0)
    stack.seen_counts.update(alerted_twice=twice, resent_messages=resent)
    new = [text for alarm, text in doubles.items() if alarm not in stack.seen_doubles]
    stack.seen_doubles.update(doubles)
    if new:
        res.notes.append("alarmed more than once: " + "; ".join(new))
    stats = sim.stats()
    res.early = int(stats.get("early", 0))
    res.cleartext = cleartext(stack.written(), [p["key"] for p in planted])
    restarts = {n: s.restarts for n, s in stack.procs.items() if s.restarts}
    res.restarts = restarts
    if restarts:
        res.notes.append("restarts " + ",".join(f"{k}={v}" for k, v in restarts.items()))
        for s in stack.procs.values():
            s.restarts = 0
    counts = stack.state().hgetall(f"{stack.prefix}:stats")
    for name_, label in (("events_missed", "events missed"), ("gists_missed", "gists missed")):
        n = int(counts.get(name_, 0)) - stack.seen_counts.get(name_, 0)
        stack.seen_counts[name_] = int(counts.get(name_, 0))
        if n:
            res.notes.append(f"{label} {n}")
    resent = int(stack.state().hget(f"{stack.prefix}:ledger:stats", "resent") or 0)
    if resent - stack.seen_counts.get("resent", 0):
        res.notes.append(f"re-sent by the ledger {resent - stack.seen_counts.get('resent', 0)}")
    stack.seen_counts["resent"] = resent
    led = stack.ledger()
    if led["dead"]:
        res.notes.append(f"dead work {led['dead']}")
    if name.startswith("keyservice"):
        res.notes.append(f"probes of parked work {probes(stack)}")
    return res


def probes(stack: Stack) -> int:
    n = int(stack.state().hget(f"{stack.prefix}:ledger:stats", "probes") or 0)
    before = stack.seen_counts.get("probes", 0)
    stack.seen_counts["probes"] = n
    return n - before


def run_broker(
    broker: str, scenarios: list[str], profile: Profile, keep: bool = False, echo: bool = True
) -> list[Result]:
    results = []
    tmp = tempfile.mkdtemp(prefix=f"ks-faults-{broker}-")
    with Stack(Path(tmp), broker, profile) as stack:
        wait_idle(stack, 30)
        for name in scenarios:
            res = run_scenario(stack, name)
            if echo:
                print(res.line(), flush=True)
            results.append(res)
    if keep:
        print(f"(kept {tmp})")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def summary_line(broker: str, results: list[Result]) -> str:
    return (
        f"faults broker={broker} lost={sum(r.lost + r.unalerted for r in results)} "
        f"twice={sum(r.revoked_twice + r.alerted_twice for r in results)} "
        f"early={sum(r.early for r in results)} "
        f"cleartext={sum(r.cleartext for r in results)} "
        f"recovery_s={max((r.recovery_s for r in results), default=0):.0f}"
    )


@contextlib.contextmanager
def _nothing() -> Iterator[None]:
    yield


def parse(argv: list[str] | None = None) -> tuple[argparse.Namespace, Profile, list[str]]:
    """The command line: its options, the profile they make and the scenarios asked for."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="every scenario briefly (< 10 min)")
    ap.add_argument("--brokers", default="redis,rabbitmq")
    ap.add_argument("--keep", action="store_true", help="keep the logs and data directories")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument(
        "--long-outage",
        type=float,
        default=None,
        help="seconds the 45-minute outage is compressed into (default: 2700, --quick: 60)",
    )
    args = ap.parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.long_outage:
        factor = args.long_outage / 2700
        profile = Profile(
            **{
                **profile.__dict__,
                "long_outage": args.long_outage,
                "probe_max": max(0.2, 60 * factor),
            }
        )
    scenarios = [s for s in args.scenarios.split(",") if s]
    unknown = set(scenarios) - set(FAULTS)
    if unknown:
        ap.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args, profile, scenarios


def _exit_on_signal(signum: int, _frame: object) -> None:
    # SIGTERM/SIGHUP (a timeout, a closed terminal) unwind like Ctrl-C, so the stack's
    # workers, beat and servers are stopped: they run in sessions of their own and
    # would otherwise outlive the bench, beat restarting its child every second.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args, profile, scenarios = parse(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    brokers = [b for b in args.brokers.split(",") if b]
    if "rabbitmq" in brokers and not rabbitmq_answers():
        print(f"faults: RabbitMQ does not answer on {RABBIT}", file=sys.stderr)
        return 2
    print(
        f"fault bench ({'quick' if args.quick else 'full'}): {profile.rate:g} documents/s, "
        f"a key in every {profile.plant_every}th, {profile.traffic:g} s of traffic per "
        f"scenario; the 60-s outage lasts {profile.outage:g} s and the 45-min one is "
        f"compressed into {profile.long_outage:g} s "
        f"(probe cap {profile.probe_max:.2f} s instead of 60 s)"
    )
    print(HEADER, flush=True)
    started = time.time()
    summaries, ok = [], True
    for broker in brokers:
        results = run_broker(broker, scenarios, profile, args.keep)
        ok = ok and all(r.ok() for r in results)
        summaries.append(summary_line(broker, results))
    print(f"({time.time() - started:.0f} s)")
    for line in summaries:
        print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
