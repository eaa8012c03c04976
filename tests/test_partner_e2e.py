"""`keysweep serve` end to end: the GitHub simulator signs and delivers partner
alerts (and plays a GitLab instance), `keysweep serve`, `keysweep worker` and the
reference key service run as real processes on a real Redis."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.server
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from tests.helpers import mg_live
from tests.serve_fixture import Serve, start_serve
from tests.sim.fixture import GitHubSim, start_sim
from tests.test_workers_e2e import BrokerSnooper, _dump, audit, statuses
from tests.workers_fixture import Deployment, deployment

GITLAB_TOKEN = "gitlab-preshared-test-token"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def item(key: str, kind: str = "live", url: str = "", source: str = "commit") -> dict[str, str]:
    return {"token": key, "type": f"mg_{kind}", "url": url, "source": source}


@contextlib.contextmanager
def stack(
    tmp_path: Path,
    ks: Any,
    *,
    serve_env: dict[str, str] | None = None,
    crawler: bool = False,
    notify: dict[str, str] | None = None,
) -> Iterator[tuple[GitHubSim, Deployment, Serve]]:
    with (
        start_sim(tmp_path / "sim", ks, poll_interval=1) as sim,
        deployment(tmp_path, sim.url, ks, notify=notify, start=crawler) as dep,
    ):
        if not crawler:
            dep.start("worker", "worker", "-Q", "act,notify", "-c", "2", "-n", "act@%h")
        env = {**dep.env, "KEYSWEEP_GITLAB_TOKEN": GITLAB_TOKEN, **(serve_env or {})}
        with start_serve(tmp_path / "serve", env) as sv:
            sim.partner_config(url=sv.alerts_url)
            yield sim, dep, sv


def revoked(ks: Any, keys: list[str]) -> bool:
    st = statuses(ks, [{"sha256": sha(k)} for k in keys])
    return len(st) == len(keys) and set(st.values()) == {"revoked"}


def test_signed_alerts_are_labelled_and_revoked_once_with_the_crawler(
    keyservice: Any, tmp_path: Path
) -> None:
    ks = keyservice
    from tests.notify_receivers import http_inbox

    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    with (
        http_inbox(secret) as hook,
        stack(
            tmp_path,
            ks,
            crawler=True,
            notify={
                "KEYSWEEP_NOTIFY_WEBHOOK_URL": hook.url,
                "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            },
        ) as (sim, dep, sv),
    ):
        snoop = BrokerSnooper(dep.broker())
        live, test = ks.mint("live"), ks.mint("test")
        unknown = mg_live()
        items = [
            item(live["key"], url="https://github.com/o/r/blob/" + "a" * 40 + "/cfg.py"),
            item(test["key"], "test", source="Gist_content"),
            item(unknown, source="npm"),
            item(live["key"], url="https://github.com/o/r/blob/" + "a" * 40 + "/cfg.py"),
        ]
        first = sim.partner_send(items)
        assert first["status"] == 200
        labels = {e["token_hash"]: e for e in first["body"]}
        assert labels[sha(live["key"])]["label"] == "true_positive"
        assert labels[sha(test["key"])]["label"] == "true_positive"
        assert labels[sha(unknown)] == {
            "token_hash": sha(unknown),
            "token_type": "mg_live",
            "label": "false_positive",
        }
        assert dep.wait_for(lambda: revoked(ks, [live["key"], test["key"]]), timeout=60)

        # GitHub retries the same delivery; the simulator's own alerts for planted pushes
        # arrive with duplicates and retries while the crawler finds the same keys.
        assert sim.partner_send(items)["status"] == 200
        sim.partner_config(duplicate_ratio=1.0, retry_ratio=1.0, delay=0.2)
        sim.generate(pushes=4, gists=2, plant={"live": 3, "test": 1})
        planted = [p for p in sim.planted() if p["kind"] in ("live", "test")]
        assert dep.wait_for(lambda: revoked(ks, [p["key"] for p in planted]), timeout=90)

        def crawled_and_alerted() -> bool:
            reported = sim.deliveries()["reported"]
            return dep.counts().get("documents_scanned", 0) >= 6 and all(
                reported.get(p["sha256"], 0) >= 2 for p in planted
            )

        assert dep.wait_for(crawled_and_alerted, timeout=90)
        assert dep.wait_for(lambda: not sim.deliveries()["inflight"], timeout=30)
        # Exactly once: one revocation audit per key, whoever reported it how often.
        everyone = [live, test, *planted]
        for k in everyone:
            assert len(audit(ks, target=k["display_prefix"], action="api_key.revoked")) == 1
        assert not statuses(ks, [{"sha256": sha(unknown)}])

        # Nothing of a planted key anywhere the system wrote.
        scrape = sv.metrics()
        worker_scrape = httpx.get(
            f"http://127.0.0.1:{dep.env['KEYSWEEP_METRICS_PORT']}/metrics", timeout=10
        ).text
        messages = snoop.close()
        state_dump = json.dumps({k: str(v) for k, v in _dump(dep.state()).items()}).encode()
        logs = dep.log_text() + sv.log_path.read_bytes()
        events = json.dumps(audit(ks)).encode()
        expected = {k["display_prefix"] for k in everyone}

        def alerted() -> set[str]:
            return {
                json.loads(r["body"])["data"]["key"]["redacted"].rstrip("…")[:16]
                for r in hook.requests
                if r["body"]
            }

        assert dep.wait_for(lambda: expected <= alerted(), timeout=60)
        alerts = b"".join(r["body"] for r in hook.requests)
        assert 'keysweep_partner_labels_total{label="true_positive"}' in scrape
        for k in [*(x["key"] for x in everyone), unknown]:
            for blob, where in (
                (state_dump, "Redis"),
                (messages, "task messages"),
                (logs, "logs"),
                (scrape.encode() + worker_scrape.encode(), "metrics"),
                (events, "audit events"),
                (alerts, "alerts"),
            ):
                assert k.encode() not in blob, f"planted key found in {where}"
        assert messages


def test_bad_signatures_are_refused_and_change_nothing(keyservice: Any, tmp_path: Path) -> None:
    ks = keyservice
    with stack(tmp_path, ks) as (sim, dep, sv):
        victim, control = ks.mint("live"), ks.mint("live")
        items = [item(victim["key"]), item(mg_live())]
        for mode in ("tamper", "wrong_key", "unknown_key", "replay", "bad_signature", "no_headers"):
            answer = sim.partner_send(items, mode)
            assert answer["status"] == 401, (mode, answer)
            assert "label" not in json.dumps(answer["body"])
        # A flood of unknown identifiers costs GitHub at most one key-list fetch a minute.
        for _ in range(5):
            assert sim.partner_send(items, "unknown_key")["status"] == 401
        assert sim.stats()["requests"]["meta_keys"] <= 2
        # Positive signal first: a genuine alert is acted on...
        assert sim.partner_send([item(control["key"])])["status"] == 200
        assert dep.wait_for(lambda: revoked(ks, [control["key"]]), timeout=60)
        # ...then the refused ones are known to have changed nothing.
        assert statuses(ks, [{"sha256": sha(victim["key"])}]) == {sha(victim["key"]): "active"}
        assert audit(ks, target=victim["display_prefix"]) == []
        refused = sv.metrics()
        assert 'keysweep_partner_refused_total{reason="bad_signature"} 4.0' in refused
        assert 'keysweep_partner_refused_total{reason="unknown_key"} 6.0' in refused


def test_a_rotated_key_is_picked_up(keyservice: Any, tmp_path: Path) -> None:
    ks = keyservice
    with stack(tmp_path, ks, serve_env={"KEYSWEEP_SERVE_KEYS_REFETCH": "1"}) as (sim, dep, _sv):
        before = sim.partner_keys()["public_keys"]
        sim.rotate_partner_key(keep_old=False)
        assert sim.partner_keys()["public_keys"][0]["key_identifier"] != before[0]["key_identifier"]
        key = ks.mint("live")
        deadline = time.time() + 20
        answer = sim.partner_send([item(key["key"])])
        while answer["status"] == 401 and time.time() < deadline:  # within the refetch pause
            time.sleep(0.3)
            answer = sim.partner_send([item(key["key"])])
        assert answer["status"] == 200, answer
        assert answer["body"][0]["label"] == "true_positive"
        assert dep.wait_for(lambda: revoked(ks, [key["key"]]), timeout=60)


class SlowProxy:
    """Forwards to the key service, each answer held back ``delay`` seconds."""

    def __init__(self, target: str) -> None:
        self.target, self.delay = target, 0.0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                time.sleep(proxy.delay)
                r = httpx.post(
                    proxy.target + self.path,
                    content=body,
                    headers={"Authorization": self.headers.get("authorization", "")},
                    timeout=30,
                )
                self.send_response(r.status_code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def test_a_slow_key_service_delays_no_answer_and_loses_no_key(
    keyservice: Any, tmp_path: Path
) -> None:
    ks = keyservice
    proxy = SlowProxy(ks.url)
    try:
        env = {"KEYSWEEP_KEYSERVICE_URL": proxy.url, "KEYSWEEP_SERVE_LABEL_WAIT": "0.5"}
        with stack(tmp_path, ks, serve_env=env) as (sim, dep, sv):
            key = ks.mint("live")
            proxy.delay = 10.0
            answer = sim.partner_send([item(key["key"])])
            assert answer == {"status": 200, "body": []}  # undecided: no label yet
            # Decided later all the same: the act path revokes it.
            assert dep.wait_for(lambda: revoked(ks, [key["key"]]), timeout=60)
            assert 'keysweep_partner_labels_total{label="undecided"} 1.0' in sv.metrics()
    finally:
        proxy.close()


def slow_upload(url: str, body: bytes, pause: float) -> int:
    """Send headers and half the body, pause, then the rest; the status code."""
    host, port = url.split("://", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    with socket.create_connection((host, int(port)), timeout=30) as s:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        s.sendall(head + body[: len(body) // 2])
        s.settimeout(pause)
        with contextlib.suppress(TimeoutError):
            reply = s.recv(4096)
            if reply:
                return int(reply.split(b" ", 2)[1])
        s.settimeout(30)
        s.sendall(body[len(body) // 2 :])
        return int(s.recv(4096).split(b" ", 2)[1])


def test_public_endpoint_limits_and_gitlab(keyservice: Any, tmp_path: Path) -> None:
    ks = keyservice
    env = {
        "KEYSWEEP_SERVE_MAX_BODY": "4096",
        "KEYSWEEP_SERVE_MAX_TOKENS": "3",
        "KEYSWEEP_SERVE_TIMEOUT": "1",
        "KEYSWEEP_SERVE_RATE_LIMIT": "40/minute",
        "KEYSWEEP_SERVE_FORWARDED_ALLOW_IPS": "127.0.0.1",
        # GitLab's analyzer names a custom rule's type gitleaks_rule_id_<rule id>.
        "KEYSWEEP_GITLAB_TOKEN_TYPES": "mg_live,mg_test,gitleaks_rule_id_mg_live",
        "KEYSWEEP_GITLAB_TOKEN": "",
        "KEYSWEEP_GITLAB_TOKEN_FILE": str(tmp_path / "gitlab.token"),
    }
    (tmp_path / "gitlab.token").write_text(GITLAB_TOKEN + "\n")
    with stack(tmp_path, ks, serve_env=env) as (sim, dep, sv):
        # GitLab's two endpoints, called as a GitLab instance calls them.
        key = ks.mint("live")
        keys = [
            {
                "type": "mg_live",
                "token": key["key"],
                "location": "https://gitlab.example/p/-/blob/x",
            },
            {"type": "gitleaks_rule_id_aws", "token": "AKIA-not-ours", "location": ""},
        ]
        out = sim.gitlab_revoke(sv.url, GITLAB_TOKEN, keys)
        assert out == {
            "types_status": 200,
            "types": ["gitleaks_rule_id_mg_live", "mg_live", "mg_test"],
            "sent": 1,
            "revoke_status": 204,
        }
        assert dep.wait_for(lambda: revoked(ks, [key["key"]]), timeout=60)
        assert sim.gitlab_revoke(sv.url, GITLAB_TOKEN, keys[:1])["revoke_status"] == 204  # again
        assert len(audit(ks, target=key["display_prefix"], action="api_key.revoked")) == 1
        assert sim.gitlab_revoke(sv.url, "wrong", keys) == {"types_status": 401}
        bad_type = httpx.post(
            sv.url + "/v1/revoke_tokens",
            json=[{"type": "gitleaks_rule_id_aws", "token": "x"}],
            headers={"Authorization": GITLAB_TOKEN},
        )
        assert bad_type.status_code == 400
        assert httpx.get(sv.url + "/v1/revoke_tokens").status_code == 405

        # Size, batch and time caps.
        big = [item(mg_live(), url="https://example.com/" + "x" * 2000) for _ in range(3)]
        assert sim.partner_send(big)["status"] == 413
        assert sim.partner_send([item(mg_live()) for _ in range(4)])["status"] == 400
        assert slow_upload(sv.alerts_url, json.dumps([item(mg_live())]).encode(), 3.0) == 408

        # Health, readiness, metrics.
        assert httpx.get(sv.url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(sv.url + "/readyz").json() == {
            "status": "ready",
            "checks": {"redis": True, "broker": True},
        }
        bearer = httpx.get(
            sv.url + "/v1/revocable_token_types",
            headers={"Authorization": f"Bearer {GITLAB_TOKEN}"},
        )
        assert bearer.status_code == 200
        # Per-client rate limit: past 40 a minute, 429 with Retry-After.
        codes = [httpx.get(sv.url + "/v1/revocable_token_types").status_code for _ in range(45)]
        assert 429 in codes
        limited = httpx.get(sv.url + "/v1/revocable_token_types")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
        assert httpx.get(sv.url + "/healthz").status_code == 200  # probes are never limited
        # Behind a trusted proxy, each X-Forwarded-For client has its own budget.
        other = httpx.get(
            sv.url + "/v1/revocable_token_types",
            headers={"Authorization": GITLAB_TOKEN, "X-Forwarded-For": "203.0.113.7"},
        )
        assert other.status_code == 200
        assert key["key"] not in sv.log_path.read_text() + sv.metrics()


def test_not_ready_without_a_broker_and_gitlab_off_without_a_token(
    keyservice: Any, tmp_path: Path
) -> None:
    with (
        start_sim(tmp_path / "sim", keyservice) as sim,
        deployment(tmp_path, sim.url, keyservice, start=False) as dep,
    ):
        env = {
            **dep.env,
            "KEYSWEEP_BROKER_URL": "redis://127.0.0.1:1/0",
            "KEYSWEEP_GITLAB_TOKEN": "",
        }
        with start_serve(tmp_path / "serve", env) as sv:
            r = httpx.get(sv.url + "/readyz", timeout=30)
            assert r.status_code == 503 and r.json()["checks"] == {"redis": True, "broker": False}
            assert httpx.get(sv.url + "/v1/revocable_token_types").status_code == 503
            # An alert that cannot be queued is answered 503, so GitHub delivers it again.
            sim.partner_config(url=sv.alerts_url)
            assert sim.partner_send([item(keyservice.mint("live")["key"])])["status"] == 503
            # A token the key service says is not ours needs no queue: labelled at once.
            unknown = mg_live()
            answer = sim.partner_send([item(unknown)])
            assert answer["status"] == 200 and answer["body"][0]["label"] == "false_positive"


def test_serve_host_and_port_options_win_over_the_variables(tmp_path: Path) -> None:
    """`keysweep serve --host … --port …` (the README's container form): the options
    decide where it listens, whatever KEYSWEEP_SERVE_HOST / _PORT say."""
    from tests.conftest import KEYSWEEP
    from tests.procs import ServiceProcess, spawn, wait_until_healthy
    from tests.serve_fixture import ServeError

    port_file, log_path = tmp_path / "serve.url", tmp_path / "serve.log"
    env = {
        **os.environ,
        "KEYSWEEP_SERVE_HOST": "203.0.113.9",  # not an address of this machine
        "KEYSWEEP_SERVE_PORT": "1",  # privileged: binding it fails unless root
    }
    cmd = [KEYSWEEP, "serve", "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file)]
    proc = spawn(cmd, env, log_path)
    try:
        url = wait_until_healthy(
            proc, port_file, log_path, health="/healthz", name="serve", error=ServeError, timeout=30
        )
    finally:
        if proc.poll() is None:
            ServiceProcess(proc, "", log_path).stop()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) not in (0, 1)
