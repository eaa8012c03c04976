"""Third-party GitHub tokens found by the crawler, reported to GitHub's
``POST /credentials/revoke``: the fetch side seals and queues, one reporter sends.

Fetch side (``hand_over``, called by a fetch task with findings that still hold
their secret): each revocable GitHub token is hashed, claimed once (``SET NX``
on its SHA-256, 30 days), sealed to the reporter's public key
(``KEYSWEEP_REPORT_PUBLIC_KEY``) and stored in Redis as ciphertext only:

* ``{prefix}:credrevoke:sealed``  hash    sha256 -> sealed box (base64)
* ``{prefix}:credrevoke:queue``   zset    sha256 scored by when it was found
* ``{prefix}:credrevoke:sent``    zset    one member per request sent, scored by time
* ``{prefix}:credrevoke:seen:<sha256>``   the claim

Reporter (``keysweep report-credentials``, one process, a Redis lock lets a second
replica stand by): holds the private key (``KEYSWEEP_REPORT_PRIVATE_KEY_FILE``),
and every ``KEYSWEEP_REPORT_EVERY`` seconds (sooner when 1,000 are waiting) opens
up to 1,000 tokens in memory, posts them, and on 202 deletes them. It never sends
more than ``KEYSWEEP_REPORT_PER_HOUR`` (60, GitHub's limit) requests in any hour,
counting every request it sent, answered or not. A batch GitHub refuses three
times (422) is dropped. Counts: ``credrevoke_reported``, ``credrevoke_dropped``
in ``keysweep status``; pending is the queue's length.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import os
import sys
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

from scanner.errors import KeysweepError
from scanner.findings import Finding

log = logging.getLogger("keysweep.credrevoke")

CLAIM_TTL = 30 * 24 * 3600
_told: set[str] = set()
REFUSALS_BEFORE_DROP = 3


def _settings() -> Any:
    from scanner.partner.settings import report_settings

    return report_settings()


def enabled() -> bool:
    return bool(_settings().report_credentials)


def _keys() -> dict[str, str]:
    from workers import state

    return {
        "sealed": state.key("credrevoke", "sealed"),
        "queue": state.key("credrevoke", "queue"),
        "sent": state.key("credrevoke", "sent"),
        "refused": state.key("credrevoke", "refused"),
    }


@cache
def _sealer() -> Any:
    from scanner.partner.credentials import Sealer

    public = _settings().report_public_key
    if not public:
        raise KeysweepError("KEYSWEEP_REPORT_PUBLIC_KEY is not set: cannot seal tokens")
    return Sealer(public)


def hand_over(findings: list[Finding]) -> int:
    """The fetch path's hook: seal and queue this batch's revocable GitHub tokens.

    Never raises (a fetch is not redone for this); returns how many were queued."""
    if not enabled():
        return 0
    from scanner.partner.credentials import revocable_github_tokens
    from workers import state

    tokens = revocable_github_tokens(findings)
    if not tokens:
        return 0
    try:
        sealer = _sealer()
        k = _keys()
        r = state.client()
        hashes = [hashlib.sha256(t).hexdigest() for t in tokens]
        firsts = state.first_times("credrevoke", hashes, ttl=CLAIM_TTL)
        new = [(h, t) for h, t, first in zip(hashes, tokens, firsts, strict=True) if first]
        if not new:
            return 0
        cap = int(_settings().report_max_pending)
        room = max(0, cap - int(r.zcard(k["queue"])))
        if len(new) > room:
            state.count("credrevoke_dropped", len(new) - room)
            log.warning("report queue full (%d): %d token(s) dropped", cap, len(new) - room)
            for h, _ in new[room:]:  # not claimed: found again later, it may be queued then
                state.forget("credrevoke", h)
            new = new[:room]
        now = time.time()
        pipe = r.pipeline()
        for h, t in new:
            pipe.hset(k["sealed"], h, sealer.seal(t))
            pipe.zadd(k["queue"], {h: now}, nx=True)
        pipe.execute()
        return len(new)
    except Exception as exc:  # the scan's own findings still go on; this is counted
        with contextlib.suppress(Exception):
            state.count("credrevoke_dropped", len(tokens))
        if str(exc) not in _told:  # once per process and kind of failure, not per batch
            _told.add(str(exc))
            log.error("could not queue GitHub tokens for reporting: %s", exc)
        return 0


def pending() -> int:
    from workers import state

    return int(state.client().zcard(_keys()["queue"]))


class Reporter:
    def __init__(
        self,
        opener: Any,
        url: str,
        *,
        every: float = 60.0,
        per_hour: int = 60,
        post: Any = None,
        clock: Any = time.time,
    ) -> None:
        from scanner.partner.credentials import post_credentials

        self.opener, self.url, self.every, self.per_hour = opener, url, every, per_hour
        self.post = post or post_credentials
        self.clock = clock
        self.told = False  # the budget-spent line was logged for this window

    def sent_last_hour(self) -> tuple[int, float]:
        """(requests in the last hour, when the newest was sent)."""
        from workers import state

        r, k, now = state.client(), _keys(), self.clock()
        r.zremrangebyscore(k["sent"], "-inf", now - 3600)
        newest = r.zrevrange(k["sent"], 0, 0, withscores=True)
        return int(r.zcard(k["sent"])), (float(newest[0][1]) if newest else 0.0)

    def due(self) -> bool:
        waiting = pending()
        if not waiting:
            return False
        count, last = self.sent_last_hour()
        if count >= self.per_hour:
            if not self.told:
                self.told = True
                log.info(
                    "hourly budget spent (%d of %d requests): %d token(s) wait",
                    count,
                    self.per_hour,
                    waiting,
                )
            return False
        self.told = False
        from scanner.partner.credentials import MAX_PER_REQUEST

        return waiting >= MAX_PER_REQUEST or self.clock() - last >= self.every

    def report_once(self) -> int:
        """One request if the budget allows; the number of tokens GitHub accepted."""
        from scanner.partner.credentials import MAX_PER_REQUEST
        from workers import state

        if not self.due():
            return 0
        r, k = state.client(), _keys()
        ids = list(r.zrange(k["queue"], 0, MAX_PER_REQUEST - 1))
        sealed = r.hmget(k["sealed"], ids)
        tokens: list[bytes] = []
        kept: list[str] = []
        broken: list[str] = []
        for h, box in zip(ids, sealed, strict=True):
            try:
                tokens.append(self.opener.open(box) if box else b"")
                kept.append(h)
            except ValueError:
                broken.append(h)
        tokens_ok = [(h, t) for h, t in zip(kept, tokens, strict=True) if t]
        broken += [h for h, t in zip(kept, tokens, strict=True) if not t]
        if broken:  # sealed to another key, or lost: cannot be reported
            self._forget(broken)
            state.count("credrevoke_dropped", len(broken))
        if not tokens_ok:
            return 0
        r.zadd(k["sent"], {uuid.uuid4().hex: self.clock()})  # counted whatever the answer
        answer = self.post(self.url, [t for _, t in tokens_ok])
        batch = [h for h, _ in tokens_ok]
        del tokens, tokens_ok
        if answer.accepted:
            self._forget(batch)
            r.delete(k["refused"])
            state.count("credrevoke_reported", len(batch))
            state.count("credrevoke_requests")
            log.info("reported %d GitHub token(s) to GitHub; %d pending", len(batch), pending())
            return len(batch)
        state.count(f"credrevoke_status_{answer.status or 'error'}")
        if answer.status == 422:
            refusals = int(r.incr(k["refused"]))
            if refusals >= REFUSALS_BEFORE_DROP:
                self._forget(batch)
                r.delete(k["refused"])
                state.count("credrevoke_dropped", len(batch))
                log.error("GitHub refused a batch %d times (422): %d dropped", refusals, len(batch))
                return 0
        log.warning(
            "credential revocation answered %s %s; %d token(s) kept for later",
            answer.status,
            answer.detail,
            len(batch),
        )
        return 0

    def _forget(self, hashes: list[str]) -> None:
        from workers import state

        r, k = state.client(), _keys()
        pipe = r.pipeline()
        pipe.hdel(k["sealed"], *hashes)
        pipe.zrem(k["queue"], *hashes)
        pipe.execute()


def _private_key() -> str:
    s = _settings()
    if s.report_private_key_file:
        try:
            return Path(s.report_private_key_file).read_text("utf-8").strip()
        except OSError as exc:
            raise KeysweepError(f"KEYSWEEP_REPORT_PRIVATE_KEY_FILE: {exc.strerror}") from None
    value = s.report_private_key.get_secret_value() if s.report_private_key else ""
    if not value:
        raise KeysweepError(
            "the reporter needs its private key: KEYSWEEP_REPORT_PRIVATE_KEY_FILE "
            "(create one with `keysweep report-credentials keygen --private-key-file FILE`)"
        )
    return value


def keygen(path: str) -> int:
    from scanner.partner.credentials import generate_keypair

    private, public = generate_keypair()
    target = Path(path)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(private + "\n")
    print(f"keysweep: private key written to {target} (mode 600): give it to the reporter only")
    print(f"KEYSWEEP_REPORT_PUBLIC_KEY={public}")
    return 0


def report_credentials(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="keysweep report-credentials",
        description="Report the GitHub tokens the crawler found in public content to GitHub's "
        "credential revocation API (POST /credentials/revoke), which revokes them and tells "
        "their owners. Fetch workers seal each token to this reporter's public key; only this "
        "process can open them. At most KEYSWEEP_REPORT_PER_HOUR (60) requests an hour, 1,000 "
        "tokens each. Run one (a second one waits on a Redis lock).",
    )
    p.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=("run", "once", "keygen", "status"),
        help="run (default): keep reporting; once: one request if due; keygen: make a key "
        "pair; status: pending and reported counts",
    )
    p.add_argument("--private-key-file", help="keygen: where to write the new private key")
    p.add_argument("--loglevel", "-l", default="INFO")
    args = p.parse_args(argv)
    if args.action == "keygen":
        if not args.private_key_file:
            p.error("keygen needs --private-key-file")
        return keygen(args.private_key_file)
    from workers import state

    if args.action == "status":
        c = state.counts()
        print(
            f"credential reporting: pending {pending()}, reported "
            f"{c.get('credrevoke_reported', 0)}, dropped {c.get('credrevoke_dropped', 0)}, "
            f"requests {c.get('credrevoke_requests', 0)}"
        )
        return 0
    from scanner.partner.credentials import Opener
    from workers.logs import setup_logging
    from workers.settings import settings

    setup_logging(args.loglevel)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        opener = Opener(_private_key())
    except ValueError as exc:
        raise KeysweepError(str(exc)) from None
    every = float(_settings().report_every)
    per_hour = int(_settings().report_per_hour)
    reporter = Reporter(
        opener, f"{settings().github_api_url}/credentials/revoke", every=every, per_hour=per_hour
    )
    if args.action == "once":
        reporter.report_once()
        return 0
    print(
        f"keysweep report-credentials: reporting to {reporter.url}, at most {per_hour} requests an "
        f"hour, one every {every:g}s at most unless 1,000 are waiting",
        flush=True,
    )
    while True:
        with state.singleton("credrevoke-reporter", ttl=120) as mine:
            while mine:
                try:
                    reporter.report_once()
                except Exception as exc:  # Redis or GitHub down: try again on the next tick
                    log.error("report failed: %s", type(exc).__name__)
                time.sleep(min(1.0, every))
                if not state.client().expire(state.key("lock", "credrevoke-reporter"), 120):
                    break
        time.sleep(5)


if __name__ == "__main__":
    sys.exit(report_credentials(sys.argv[1:]))
