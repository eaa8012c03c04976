"""The background deployment end to end: the GitHub simulator, the reference key
service, `keysweep worker` and `keysweep beat` as real processes on a real Redis."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import subprocess
import threading
import time
from pathlib import Path

import httpx

from tests.conftest import KEYSWEEP
from tests.notify_receivers import http_inbox
from tests.sim.fixture import start_sim
from tests.workers_fixture import deployment


def audit(ks, **params: str) -> list[dict]:  # type: ignore[no-untyped-def]
    r = httpx.get(
        f"{ks.url}/v1/audit-events",
        params=params,
        headers={"Authorization": f"Bearer {ks.token}"},
        timeout=30,
    )
    return r.json()["events"]


def statuses(ks, keys: list[dict]) -> dict[str, str]:  # type: ignore[no-untyped-def]
    r = httpx.post(
        f"{ks.url}/v1/keys/lookup",
        json={"hashes": [k["sha256"] for k in keys]},
        headers={"Authorization": f"Bearer {ks.token}"},
        timeout=30,
    )
    return {m["sha256"]: m["status"] for m in r.json()["matches"]}


class BrokerSnooper:
    """Copies every message that passes through the broker (queues and unacked)."""

    def __init__(self, broker) -> None:  # type: ignore[no-untyped-def]
        self.broker = broker
        self.seen: list[bytes] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            for k in self.broker.scan_iter("*"):
                t = self.broker.type(k)
                if t == b"list":
                    self.seen.extend(self.broker.lrange(k, 0, -1))
                elif t == b"hash":
                    self.seen.extend(self.broker.hvals(k))
            time.sleep(0.05)

    def close(self) -> bytes:
        self.stop.set()
        self.thread.join(timeout=5)
        return b"".join(self.seen)


def test_pushes_gists_and_public_repos_are_revoked_once(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    with (
        start_sim(tmp_path / "sim", ks, poll_interval=1) as sim,
        http_inbox(secret) as hook,
        deployment(
            tmp_path,
            sim.url,
            ks,
            notify={
                "KEYSWEEP_NOTIFY_WEBHOOK_URL": hook.url,
                "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            },
        ) as dep,
    ):
        snoop = BrokerSnooper(dep.broker())
        sim.generate(
            pushes=12,
            gists=6,
            public_repos=1,
            plant={"live": 4, "test": 2, "third_party": 3, "near_miss": 4},
        )
        truth = sim.planted()
        ours = [p for p in truth if p["kind"] in ("live", "test")]
        assert {p["doc"]["type"] for p in ours} == {"push", "gist", "repo"}, truth

        def all_revoked() -> bool:
            st = statuses(ks, ours)
            return len(st) == len(ours) and set(st.values()) == {"revoked"}

        assert dep.wait_for(all_revoked, timeout=120), (statuses(ks, ours), dep.counts())

        # Exactly once each, with a leak_detected trail.
        for p in ours:
            assert len(audit(ks, target=p["display_prefix"], action="api_key.revoked")) == 1
            assert audit(ks, target=p["display_prefix"], action="api_key.leak_detected")

        # A duplicated event changes nothing: once a poll has read it (the positive
        # signal), nothing was queued for it and the audit trail is as it was.
        push_event = next(p["doc"]["event_id"] for p in ours if p["doc"]["type"] == "push")
        before, counted = len(audit(ks)), dep.counts()
        t_dup = time.time()
        sim.duplicate(push_event)
        assert dep.wait_for(
            lambda: (
                any(e["status"] == 200 and e["t"] > t_dup for e in sim.stats()["events_requests"])
                and dep.counts().get("events_seen", 0) > counted.get("events_seen", 0)
            ),
            timeout=60,
        )
        assert dep.counts().get("documents_queued") == counted.get("documents_queued")
        assert len(audit(ks)) == before

        # Alerts: the security team's webhook heard of every key we found, once per key;
        # near misses were not found at all.
        def alerted() -> set[str]:
            return {
                json.loads(r["body"])["data"]["key"]["redacted"].rstrip("…")[:16]
                for r in hook.requests
                if r["body"]
            }

        expected = {p["display_prefix"] for p in ours}
        assert dep.wait_for(lambda: expected <= alerted(), timeout=120)
        third = [p for p in truth if p["kind"] == "third_party"]
        assert dep.wait_for(lambda: len(hook.requests) >= len(ours) + len(third), timeout=120), (
            len(hook.requests),
            len(ours),
            len(third),
            dep.counts(),
        )
        assert hook.verified == len(hook.requests)
        near = [p for p in truth if p["kind"] == "near_miss"]
        bodies = b"".join(r["body"] for r in hook.requests)
        for p in near:
            assert hashlib.sha256(p["key"].encode()).hexdigest().encode() not in bodies

        # The poller: If-None-Match sent and a 304 taken once nothing new was published
        # (the feed has been quiet since the duplicate was read: wait for that poll), and
        # X-Poll-Interval obeyed between all of them.
        assert dep.wait_for(lambda: sim.stats()["not_modified"] > 0, timeout=60), sim.stats()
        stats = sim.stats()
        firsts = [e for e in stats["events_requests"] if e["page"] == "1"]
        gaps = [b["t"] - a["t"] for a, b in itertools.pairwise(firsts)]
        assert gaps and min(gaps) >= 0.95, gaps
        assert stats["if_none_match"] > 0 and stats["not_modified"] > 0

        # A 429 with retry-after is waited out.
        sim.fault("/events", 429, retry_after=3, count=1)
        t0 = time.time()
        assert dep.wait_for(
            lambda: any(e["status"] == 429 and e["t"] > t0 for e in sim.stats()["events_requests"]),
            timeout=20,
        )
        hit = next(
            e["t"] for e in sim.stats()["events_requests"] if e["status"] == 429 and e["t"] > t0
        )
        assert dep.wait_for(
            lambda: any(e["t"] > hit for e in sim.stats()["events_requests"]), timeout=30
        )
        after = [e["t"] for e in sim.stats()["events_requests"] if e["t"] > hit]
        assert min(after) - hit >= 2.9

        # keysweep status shows it to a person.
        st = subprocess.run(
            [KEYSWEEP, "status", "--format", "json"], env=dep.env, capture_output=True, timeout=60
        )
        counts = json.loads(st.stdout)["counts"]
        assert counts["outcome_revoked"] == len(ours) and counts["documents_scanned"] >= 19

        # Prometheus metrics from the worker's processes; labels carry no secret, hash or repo.
        scrape = httpx.get(
            f"http://127.0.0.1:{dep.env['KEYSWEEP_METRICS_PORT']}/metrics", timeout=10
        ).text
        assert f'keysweep_revocations_total{{result="revoked"}} {len(ours)}.0' in scrape
        assert "keysweep_fetch_to_revoke_seconds_bucket" in scrape
        assert 'keysweep_queue_depth{queue="fetch"}' in scrape
        assert 'keysweep_findings_total{owner="keyservice",rule="mg-live-key"}' in scrape
        for p in truth:
            assert p["key"] not in scrape and p["sha256"] not in scrape
            if p["doc"].get("repo"):
                assert p["doc"]["repo"] not in scrape
        assert Path(dep.env["KEYSWEEP_HEARTBEAT_FILE"]).exists()

        # No planted key anywhere: Redis (every key), the broker's messages, the logs, alerts.
        messages = snoop.close()
        state_dump = json.dumps({k: str(v) for k, v in _dump(dep.state()).items()}).encode()
        logs = dep.log_text()
        for p in truth:
            if p["kind"] == "near_miss":
                continue
            key = p["key"].encode()
            for blob, where in (
                (state_dump, "Redis"),
                (messages, "task messages"),
                (logs, "worker logs"),
                (bodies, "alerts"),
            ):
                assert key not in blob, f"planted {p['kind']} key found in {where}"
        assert messages, "the snooper saw no task message at all"


def _dump(r) -> dict:  # type: ignore[no-untyped-def]
    out = {}
    for k in r.scan_iter("*"):
        t = r.type(k)
        out[k] = (
            r.get(k)
            if t == "string"
            else r.hgetall(k)
            if t == "hash"
            else r.lrange(k, 0, -1)
            if t == "list"
            else r.smembers(k)
            if t == "set"
            else r.zrange(k, 0, -1)
        )
    return out


def test_enqueue_repo_scans_full_history(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    with (
        start_sim(tmp_path / "sim", ks, poll_interval=3600) as sim,
        deployment(tmp_path, sim.url, ks) as dep,
    ):
        sim.generate(pushes=0, gists=0, public_repos=1, plant={"live": 2})
        repo = next(p["doc"]["repo"] for p in sim.planted() if p["doc"]["type"] == "repo")
        meta = httpx.get(f"{sim.url}/repos/{repo}", timeout=30).json()
        p = subprocess.run(
            [KEYSWEEP, "enqueue", "repo", meta["clone_url"]],
            env=dep.env,
            capture_output=True,
            timeout=60,
        )
        assert p.returncode == 0, p.stderr.decode()
        ours = [x for x in sim.planted() if x["kind"] == "live"]
        assert dep.wait_for(lambda: set(statuses(ks, ours).values()) == {"revoked"}, timeout=90)
        bad = subprocess.run(
            [KEYSWEEP, "enqueue", "repo", "ext::sh"],
            env=dep.env,
            capture_output=True,
            timeout=60,
        )
        assert bad.returncode == 2 and b"transport helpers" in bad.stderr
        assert bad.stderr.count(b"\n") == 1  # one clear line, no traceback
