"""Throughput of the GitHub simulator for a worker-like client (prints figures).

    python -m tests.sim.bench [--pushes 600 --gists 300 --concurrency 1,8 --rate 0]

Starts the simulator as a process (limits raised so the client never waits),
generates the documents, then fetches every push's compare and every gist's
detail: once from a plain httpx loop, then from a thread pool. With ``--rate R``
the background generator runs at R documents/s during the timed runs and the
client follows /events instead (with ETags), fetching what appears.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import statistics
import tempfile
import threading
import time
from pathlib import Path

from tests.sim.fixture import GitHubSim, start_sim

ZEROS = "0" * 40


def doc_urls(sim: GitHubSim) -> list[str]:
    """Compare URLs of the pushes on /events and detail URLs of the listed gists."""
    urls: list[str] = []
    with sim.client("bench") as gh:
        for page in range(1, 4):
            for e in gh.get("/events", params={"per_page": 100, "page": page}).json():
                p = e["payload"]
                if e["type"] == "PushEvent":
                    if p["before"] == ZEROS:
                        urls.append(f"/repos/{e['repo']['name']}/commits/{p['head']}")
                    else:
                        urls.append(
                            f"/repos/{e['repo']['name']}/compare/{p['before']}...{p['head']}"
                        )
        for page in range(1, 31):
            gists = gh.get("/gists/public", params={"per_page": 100, "page": page}).json()
            if not gists:
                break
            urls += [f"/gists/{g['id']}" for g in gists]
    return urls


def timed_fetch(sim: GitHubSim, urls: list[str], workers: int) -> tuple[float, list[float], int]:
    lat: list[float] = []
    nbytes = 0
    lock = threading.Lock()
    local = threading.local()

    def one(url: str) -> None:
        nonlocal nbytes
        gh = getattr(local, "gh", None)
        if gh is None:
            gh = local.gh = sim.client(f"bench-{threading.get_ident()}")
        t = time.perf_counter()
        r = gh.get(url)
        dt = time.perf_counter() - t
        assert r.status_code == 200, (url, r.status_code)
        with lock:
            lat.append(dt)
            nbytes += len(r.content)

    start = time.perf_counter()
    if workers <= 1:
        for u in urls:
            one(u)
    else:
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, urls))
    return time.perf_counter() - start, lat, nbytes


def follow(sim: GitHubSim, seconds: float, workers: int) -> tuple[int, float]:
    """Poll /events with ETags and fetch each new push/gist; returns (docs, elapsed)."""
    seen: set[str] = set()
    gist_since = None
    etag = None
    docs = 0
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    local = threading.local()

    def get(url: str) -> int:
        gh = getattr(local, "gh", None)
        if gh is None:
            gh = local.gh = sim.client(f"follow-{threading.get_ident()}")
        return int(gh.get(url).status_code)

    start = time.perf_counter()
    with sim.client("poller") as gh:
        while time.perf_counter() - start < seconds:
            urls: list[str] = []
            headers: dict[str, str] = {"If-None-Match": etag} if etag else {}
            r = gh.get("/events", params={"per_page": 100}, headers=headers)
            if r.status_code == 200:
                etag = r.headers.get("etag")
                for e in r.json():
                    if e["id"] in seen or e["type"] != "PushEvent":
                        continue
                    seen.add(e["id"])
                    p = e["payload"]
                    if p["before"] == ZEROS:
                        urls.append(f"/repos/{e['repo']['name']}/commits/{p['head']}")
                    else:
                        urls.append(
                            f"/repos/{e['repo']['name']}/compare/{p['before']}...{p['head']}"
                        )
            params = {"per_page": "100", **({"since": gist_since} if gist_since else {})}
            for g in gh.get("/gists/public", params=params).json():
                if g["id"] not in seen:
                    seen.add(g["id"])
                    urls.append(f"/gists/{g['id']}")
                    gist_since = max(gist_since or "", g["updated_at"])
            codes = list(pool.map(get, urls))
            docs += sum(c == 200 for c in codes)
            time.sleep(0.1)
    pool.shutdown()
    return docs, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pushes", type=int, default=600)
    ap.add_argument("--gists", type=int, default=300)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--rate", type=float, default=0.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        start_sim(
            Path(tmp),
            seed=1,
            rate_limit=10**9,
            points_per_minute=10**9,
            max_concurrent=10**6,
            poll_interval=1,
        ) as sim,
    ):
        t = time.perf_counter()
        made = sim.generate(
            pushes=args.pushes, gists=args.gists, noise=0, plant={"third_party": 50}
        )
        gen = time.perf_counter() - t
        print(
            f"generated {made['documents']} documents in {gen:.2f}s "
            f"({made['documents'] / gen:.0f} docs/s)"
        )
        if args.rate > 0:
            sim.reset(rate=args.rate)
            for workers in [int(c) for c in args.concurrency.split(",")]:
                docs, elapsed = follow(sim, args.seconds, workers)
                st = sim.stats()
                print(
                    f"follow rate={args.rate:g}/s workers={workers}: {docs / elapsed:.0f} docs/s "
                    f"fetched; generated {st['generated_docs']} in {st['uptime']:.0f}s"
                )
                sim.reset(rate=args.rate)
            return
        urls = doc_urls(sim)
        n_cmp = sum("/compare/" in u or "/commits/" in u for u in urls)
        print(f"workload: {n_cmp} compares/commits + {len(urls) - n_cmp} gist details")
        for workers in [int(c) for c in args.concurrency.split(",")]:
            elapsed, lat, nbytes = timed_fetch(sim, urls, workers)
            lat.sort()
            p50 = statistics.median(lat) * 1000
            p99 = lat[int(len(lat) * 0.99) - 1] * 1000
            print(
                f"workers={workers}: {len(urls) / elapsed:.0f} req/s, "
                f"{nbytes / elapsed / 1e6:.1f} MB/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
            )


if __name__ == "__main__":
    main()
