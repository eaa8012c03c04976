"""Partner-alert intake benchmark: the GitHub simulator delivering signed secret
scanning alerts -> `keysweep serve` -> Celery act workers on Redis -> key service.

Everything runs as real processes on this machine: the reference key service,
the GitHub simulator (signing alerts with its P-256 key), `keysweep serve`, act
workers and, for the comparison, the crawler (poll and fetch workers, beat).

1. Intake: the simulator mints keys through the key service, mixes them with
   well-formed tokens nobody issued (false positives, one real key per
   ``--real-every`` tokens), and delivers them at ``--rate`` tokens/s in batches
   of ``--batch``, with ``--duplicates`` of the tokens reported twice and
   ``--retries`` of the deliveries sent again as if the answer were lost.
   Printed: tokens/s accepted (sustained over the run), request latency, p50/p99
   from alert sent to key revoked (the key service's ``revoked_at``), keys lost
   (never revoked) and revoked twice (more than one ``api_key.revoked`` audit
   event).
2. End to end, planted push -> revoked: the simulator publishes pushes and gists
   with planted keys at ``--docs-rate``; first only the partner path runs (alerts
   ``--partner-delay`` s after each push, GitHub's own scanning delay), then only
   the crawler (the public events feed, as bench/pipeline.py measures it).

Targets (2 cores): >= 1,000 tokens/s intake, p99 alert -> revoked <= 1 s,
nothing lost, nothing twice. The last line is
``intake tokens_per_s=N p99_s=X lost=N twice=N``.

Usage: python bench/intake.py [--quick] [--rate 1200] [--seconds 20]
Needs Redis at KEYSWEEP_TEST_REDIS_ADDR (default 127.0.0.1:6379; databases 12 and 13
are flushed).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.keyservice_fixture import start_keyservice  # noqa: E402
from tests.serve_fixture import start_serve  # noqa: E402
from tests.sim.fixture import start_sim  # noqa: E402
from tests.workers_fixture import deployment  # noqa: E402


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, round(p / 100 * (len(v) - 1)))]


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


class KeyService:
    def __init__(self, ks: Any) -> None:
        self.http = httpx.Client(
            base_url=ks.url, headers={"Authorization": f"Bearer {ks.token}"}, timeout=120
        )

    def records(self, hashes: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(hashes), 1000):
            r = self.http.post("/v1/keys/lookup", json={"hashes": hashes[i : i + 1000]})
            out.update({m["sha256"]: m for m in r.json()["matches"]})
        return out

    def revocations(self) -> collections.Counter[str]:
        events = self.http.get("/v1/audit-events", params={"action": "api_key.revoked"}).json()
        return collections.Counter(e["target"] for e in events["events"])


def settle(check: Any, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.5)
    return bool(check())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children so far (Linux /proc)."""
    import os

    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def redis_cpu_seconds() -> float:
    """CPU seconds the Redis server (broker and state) has used so far."""
    from tests import redis_env

    info = redis_env.connect(0).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def served_seconds(metrics: str, endpoint: str = "github") -> tuple[float, float]:
    """p50 and p99 (bucket upper bounds) of keysweep serve's own request seconds."""
    buckets: list[tuple[float, float]] = []
    prefix = f'keysweep_partner_request_seconds_bucket{{endpoint="{endpoint}",le="'
    for line in metrics.splitlines():
        if line.startswith(prefix):
            le, count = line[len(prefix) :].split('"} ')
            buckets.append((float(le), float(count)))
    if not buckets or not buckets[-1][1]:
        return float("nan"), float("nan")
    total = buckets[-1][1]

    def q(p: float) -> float:
        return next(le for le, c in buckets if c >= p * total)

    return q(0.5), q(0.99)


def key_service_floor(ks: Any, seconds: float = 3.0, clients: int = 8) -> float:
    """Requests/s the key service alone answers to audit-event writes from ``clients``
    threads: the floor under keysweep's revocation rate (each revoked key costs the key
    service a lookup, a revocation and two or three audit writes)."""
    import threading
    import uuid

    done = [0] * clients
    stop = time.time() + seconds

    def client(i: int) -> None:
        with httpx.Client(
            base_url=ks.url, headers={"Authorization": f"Bearer {ks.token}"}, timeout=30
        ) as http:
            while time.time() < stop:
                r = http.post(
                    "/v1/audit-events",
                    json={
                        "action": "api_key.leak_notified",
                        "actor": "bench",
                        "target": "mg_test_floor",
                        "timestamp": "2026-01-01T00:00:00Z",
                        "metadata": {},
                    },
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                if r.status_code < 300:
                    done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.time() - t0)


def intake(
    args: argparse.Namespace, sim: Any, ks: KeyService, serve: Any, procs: dict[str, int]
) -> dict[str, float]:
    sim.partner_config(batch=args.batch, duplicate_ratio=args.duplicates, retry_ratio=args.retries)
    sim.reset()
    started = time.time()
    stream = sim.partner_stream(args.rate, args.seconds, args.real_every)
    minted = time.time() - started
    # From here on: the delivery (minting the keys is done before it starts).
    cpu0 = {name: cpu_seconds(pid) for name, pid in procs.items()}
    cpu0["redis"] = redis_cpu_seconds()
    real = stream["real"]
    hashes = [r["sha256"] for r in real]

    def delivered() -> bool:
        d = sim.deliveries(summary=True)
        return d["sent"] >= stream["tokens"] and not d["inflight"]

    settle(delivered, args.seconds * 4 + 60)

    def all_revoked() -> bool:
        recs = ks.records(hashes)
        return sum(1 for h in hashes if recs.get(h, {}).get("status") == "revoked") == len(hashes)

    settle(all_revoked, 120)
    used = {name: cpu_seconds(pid) - cpu0[name] for name, pid in procs.items()}
    used["redis"] = redis_cpu_seconds() - cpu0["redis"]
    d = sim.deliveries()
    firsts = [x for x in d["deliveries"] if x["attempt"] == 1]
    ok = [x for x in d["deliveries"] if x.get("status") == 200]
    t0 = min(x["t"] for x in firsts)
    t1 = max(x["t"] + x["seconds"] for x in d["deliveries"])
    accepted = sum(x["tokens"] for x in ok)
    first_sent = d["first_sent"]
    recs = ks.records(hashes)
    revs = ks.revocations()
    lat = [
        epoch(recs[h]["revoked_at"]) - first_sent[h]
        for h in hashes
        if recs.get(h, {}).get("status") == "revoked" and h in first_sent
    ]
    windows: dict[int, list[float]] = collections.defaultdict(list)
    for h in hashes:
        if recs.get(h, {}).get("status") == "revoked" and h in first_sent:
            windows[int((first_sent[h] - t0) // 5)].append(
                epoch(recs[h]["revoked_at"]) - first_sent[h]
            )
    lost = sum(1 for h in hashes if recs.get(h, {}).get("status") != "revoked")
    twice = sum(1 for r in real if revs.get(r["display_prefix"], 0) > 1)
    statuses = collections.Counter(str(x.get("status")) for x in d["deliveries"])
    labels: collections.Counter[str] = collections.Counter()
    for x in ok:
        labels.update(x.get("labels") or {})
    reported_twice = sum(1 for n in d["reported"].values() if n > 1)
    out = {
        "offered": args.rate,
        "tokens_per_s": accepted / max(1e-9, t1 - t0),
        "req_p50": pct([x["seconds"] for x in ok], 50),
        "req_p99": pct([x["seconds"] for x in ok], 99),
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "lost": lost,
        "twice": twice,
    }
    print(
        f"intake: {stream['tokens']} tokens offered at {args.rate:.0f}/s in batches of "
        f"{args.batch} ({len(real)} real keys minted in {minted:.1f} s), {reported_twice} "
        f"tokens reported more than once (duplicates {args.duplicates:.0%}, retried deliveries "
        f"{args.retries:.0%})"
    )
    s50, s99 = served_seconds(serve.metrics())
    print(
        f"  accepted {accepted} tokens in {t1 - t0:.1f} s = {out['tokens_per_s']:.0f} tokens/s; "
        f"answers {dict(statuses)}; labels {dict(labels)} (the rest undecided in time)"
    )
    print(
        f"  request seconds as GitHub waits: p50 {out['req_p50']:.3f} p99 {out['req_p99']:.3f}; "
        f"inside keysweep serve: p50 <= {s50:g} p99 <= {s99:g}"
    )
    print(
        "  CPU seconds used meanwhile: "
        + ", ".join(f"{name} {sec:.1f}" for name, sec in used.items())
        + f" (wall {t1 - t0:.1f} s, 2 cores, shared)"
    )
    print(
        "  CPU ms per 1,000 tokens: "
        + ", ".join(
            f"{name} {1e6 * sec / max(1, stream['tokens']):.0f}" for name, sec in used.items()
        )
        + f"; keysweep (serve + act worker) per revoked key: "
        f"{1e3 * (used['serve'] + used['act worker']) / max(1, len(real)):.1f} ms"
    )
    print(
        f"  alert -> revoked: p50 {out['p50']:.2f} s, p99 {out['p99']:.2f} s over {len(lat)} "
        f"keys; lost {lost}, revoked twice {twice}"
    )
    print(
        "  p99 by 5 s of sending: "
        + " ".join(f"{pct(windows[w], 99):.2f}" for w in sorted(windows))
        + " s"
    )
    return out


def end_to_end(args: argparse.Namespace, sim: Any, dep: Any, ks: KeyService, path: str) -> None:
    sim.reset()
    if path == "partner":
        sim.partner_config(delay=args.partner_delay, duplicate_ratio=0, retry_ratio=0, batch=50)
    else:
        sim.partner_config(url=None)
    t0 = time.time()
    sim.set_rate(args.docs_rate, plant_every=10, plant_kinds=["live", "test"])
    time.sleep(args.e2e_seconds)
    sim.set_rate(0)
    planted = [p for p in sim.planted(since=t0) if p["kind"] in ("live", "test")]
    hashes = [p["sha256"] for p in planted]
    settle(
        lambda: (
            all(r.get("status") == "revoked" for r in ks.records(hashes).values())
            and len(ks.records(hashes)) == len(hashes)
        ),
        90,
    )
    recs = ks.records(hashes)
    lat = [
        epoch(recs[p["sha256"]]["revoked_at"]) - float(p["published_at"])
        for p in planted
        if recs.get(p["sha256"], {}).get("status") == "revoked"
    ]
    what = (
        f"partner alerts ({args.partner_delay:g} s after the push)"
        if path == "partner"
        else "events feed (crawler)"
    )
    print(
        f"  {what:<40} planted {len(planted):3d}, revoked {len(lat):3d}, publish -> revoked "
        f"p50 {pct(lat, 50):5.2f} s, p99 {pct(lat, 99):5.2f} s"
    )


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="ks-intake-") as tmp_s:
        tmp = Path(tmp_s)
        with (
            start_keyservice(tmp / "ks") as ks_proc,
            start_sim(
                tmp / "sim",
                ks_proc,
                poll_interval=1,
                rate_limit=10_000_000,
                max_concurrent=1000,
                points_per_minute=10_000_000,
            ) as sim,
            deployment(
                tmp,
                sim.url,
                ks_proc,
                start=False,
                extra_env={"KEYSWEEP_GITHUB_CONCURRENCY": "50", "KEYSWEEP_POLL_EVERY": "0.2"},
            ) as dep,
        ):
            dep.start(
                "act",
                "worker",
                "-Q",
                "act,notify",
                "-c",
                str(args.act),
                "-P",
                args.act_pool,
                "-n",
                "act@%h",
            )
            env = {
                **dep.env,
                "KEYSWEEP_SERVE_RATE_LIMIT": "100000/second",
                "KEYSWEEP_SERVE_LABEL_WAIT": str(args.label_wait),
            }
            with start_serve(tmp / "serve", env) as serve:
                sim.partner_config(url=serve.alerts_url)
                ks = KeyService(ks_proc)
                print(
                    f"intake benchmark: keysweep serve (1 process) + act worker ({args.act_pool} x "
                    f"{args.act}), "
                    "key service and GitHub simulator on this machine"
                )
                procs = {
                    "serve": serve.proc.pid,
                    "key service": ks_proc.proc.pid,
                    "simulator": sim.proc.pid,
                    "act worker": dep.procs["act"].pid,
                }
                floor = key_service_floor(ks_proc)
                print(
                    f"floor: the key service alone answers {floor:.0f} audit writes/s (8 "
                    f"clients); at 4 calls per revoked key that is at most {floor / 4:.0f} "
                    f"keys/s, or {floor / 4 * args.real_every:.0f} tokens/s with one real key "
                    f"per {args.real_every}"
                )
                result = intake(args, sim, ks, serve, procs)
                print("end to end, planted push -> key revoked:")
                sim.partner_config(url=serve.alerts_url)
                end_to_end(args, sim, dep, ks, "partner")
                dep.start("poll", "worker", "-Q", "poll", "-c", "1", "-n", "poll@%h")
                dep.start(
                    "fetch", "worker", "-Q", "fetch", "-c", "3", "-P", "threads", "-n", "f@%h"
                )
                dep.start("beat", "beat")
                time.sleep(3)
                end_to_end(args, sim, dep, ks, "crawler")
                met = (
                    result["tokens_per_s"] >= 1000
                    and result["p99"] <= 1.0
                    and not result["lost"]
                    and not result["twice"]
                )
                print(
                    "targets: >= 1,000 tokens/s, p99 alert -> revoked <= 1 s, nothing lost or "
                    f"twice -> {'met' if met else 'NOT met'}"
                )
                print(
                    f"intake tokens_per_s={result['tokens_per_s']:.0f} p99_s={result['p99']:.2f} "
                    f"lost={result['lost']} twice={result['twice']}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="a short run (well under 5 minutes)")
    ap.add_argument("--rate", type=float, default=1200, help="tokens per second offered")
    ap.add_argument("--seconds", type=float, default=60, help="length of the intake run")
    ap.add_argument("--batch", type=int, default=100, help="tokens per alert request")
    ap.add_argument("--real-every", type=int, default=20, help="one minted key per N tokens")
    ap.add_argument("--duplicates", type=float, default=0.05)
    ap.add_argument("--retries", type=float, default=0.05)
    ap.add_argument("--act", type=int, default=8, help="act+notify worker concurrency")
    ap.add_argument(
        "--act-pool",
        default="threads",
        choices=("prefork", "threads"),
        help="the act worker's pool (threads: key-service calls are I/O)",
    )
    ap.add_argument("--docs-rate", type=float, default=20, help="documents/s in the e2e runs")
    ap.add_argument("--e2e-seconds", type=float, default=30)
    ap.add_argument("--partner-delay", type=float, default=1.0)
    ap.add_argument(
        "--label-wait", type=float, default=2.0, help="KEYSWEEP_SERVE_LABEL_WAIT of the service"
    )
    args = ap.parse_args()
    if args.quick:
        args.seconds = min(args.seconds, 20)
        args.e2e_seconds = min(args.e2e_seconds, 15)
    run(args)


if __name__ == "__main__":
    main()
