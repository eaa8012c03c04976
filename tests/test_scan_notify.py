"""`keysweep scan --notify`: alerts without a key service, to real receivers on loopback;
the README's way to make a webhook secret works; a failed delivery names its channel
and host."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

from scanner.rules import pack_rules
from tests.conftest import KEYSWEEP, ROOT
from tests.helpers import GIT_ENV, Repo, github_token, mg_live
from tests.notify_receivers import http_inbox
from tests.test_notify import whsec


def readme_secret_command() -> str:
    """The command the README gives for making a whsec_ secret."""
    text = (ROOT / "README.md").read_text()
    m = re.search(r"^(python3? -c .*whsec_.*)$", text, re.M)
    assert m, "the README shows how to make a whsec_ secret"
    return m.group(1)


def scan_env(env: dict) -> dict:
    """This environment without any KEYSWEEP_ variable, plus git's and ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")}
    return {**clean, **GIT_ENV, **env}


def scan(repo: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [KEYSWEEP, "scan", str(repo), *args], capture_output=True, env=scan_env(env), timeout=120
    )


def test_notify_without_a_key_service(tmp_path: Path) -> None:
    secret = subprocess.run(
        ["sh", "-c", readme_secret_command()], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert secret.startswith("whsec_")
    r = Repo(tmp_path / "r")
    live, gh = mg_live(), github_token()
    r.write("a.py", f"K = '{live}'\nT = '{gh}'\n")
    r.commit("keys")
    with http_inbox(secret) as hook:
        env = {
            "KEYSWEEP_NOTIFY_WEBHOOK_URL": hook.url,
            "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            "KEYSWEEP_STATE_DIR": str(tmp_path / "state"),
        }
        # Without --notify nothing is sent (and no key service is needed either way).
        assert scan(r.path, env).returncode == 1 and hook.requests == []
        p = scan(r.path, env, "--notify")
        assert p.returncode == 1, p.stderr.decode()
        assert "alerts sent: webhook:alert 2" in p.stderr.decode()
        assert len(hook.requests) == 2 and hook.verified == 2
        bodies = [json.loads(x["body"]) for x in hook.requests]
        families = {b["data"]["key"]["rule_id"]: b["data"] for b in bodies}
        assert families["mg-live-key"]["action"]["result"] == "not_checked"
        assert families["github-classic-token"]["location"]["path"] == "a.py"
        # A third-party key's next step is its issuer's own: where to revoke it.
        gh_rule = next(r for r in pack_rules() if r.id == "github-classic-token")
        assert gh_rule.remediation
        assert families["github-classic-token"]["next_step"].startswith(
            gh_rule.remediation.rstrip(".")
        )
        assert "check its logs for use since" in families["github-classic-token"]["next_step"]
        assert live not in json.dumps(bodies) and gh not in json.dumps(bodies)
        # A second run says nothing new.
        again = scan(r.path, env, "--notify")
        assert len(hook.requests) == 2 and "already sent before: 2" in again.stderr.decode()


def test_failed_delivery_names_channel_and_host(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.write("a.py", f"T = '{github_token()}'\n")
    r.commit("token")
    with http_inbox() as slack:
        slack.always_fail = True
        env = {
            "KEYSWEEP_NOTIFY_SLACK_URL": slack.url + "/T000/B000/secretpath",
            "KEYSWEEP_STATE_DIR": str(tmp_path / "state"),
        }
        p = scan(r.path, env, "--notify")
    err = p.stderr.decode()
    host = slack.url.split("/")[2]
    assert p.returncode == 2
    assert f"alert not delivered: slack ({host}): HTTP 500" in err
    assert "secretpath" not in err
    nothing = scan(r.path, {"KEYSWEEP_STATE_DIR": str(tmp_path / "s2")}, "--notify")
    assert nothing.returncode == 2 and "no alert channel is configured" in nothing.stderr.decode()


def test_notify_settings_from_a_config_file(tmp_path: Path) -> None:
    r = Repo(tmp_path / "r")
    r.write("a.py", f"T = '{github_token()}'\n")
    r.commit("token")
    with http_inbox() as slack:
        conf = tmp_path / "keysweep.toml"
        conf.write_text(f'[notify]\nslack_url = "{slack.url}"\n')
        env = {"KEYSWEEP_STATE_DIR": str(tmp_path / "state")}
        p = scan(r.path, env, "--notify", "--config", str(conf))
        assert p.returncode == 1, p.stderr.decode()
        assert len(slack.requests) == 1 and "alerts sent: slack:alert 1" in p.stderr.decode()


def test_an_alert_a_killed_run_was_sending_is_sent_by_a_later_run_not_skipped(
    tmp_path: Path,
) -> None:
    """A scan killed while its alert was out leaves that alert's claim pending. A run
    right after must not count it as already said (it may never have arrived): it
    says the alert is held by another run and exits 2; run again once that claim has
    lapsed (15 s; aged here), it sends the alert."""
    r = Repo(tmp_path / "r")
    r.write("a.py", f"K = '{mg_live()}'\n")
    r.commit("key")
    state = tmp_path / "state"
    secret = whsec()
    arrived = threading.Event()
    with socket.socket() as stall:  # a receiver that takes the request and never answers
        stall.bind(("127.0.0.1", 0))
        stall.listen()

        def take() -> None:
            conn, _ = stall.accept()
            conn.recv(65536)
            arrived.set()
            time.sleep(30)
            conn.close()

        threading.Thread(target=take, daemon=True).start()
        env = {
            "KEYSWEEP_NOTIFY_WEBHOOK_URL": f"http://127.0.0.1:{stall.getsockname()[1]}/hook",
            "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            "KEYSWEEP_STATE_DIR": str(state),
        }
        first = subprocess.Popen(
            [KEYSWEEP, "scan", str(r.path), "--notify"],
            env=scan_env(env),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not arrived.wait(60):
            first.kill()
            raise AssertionError(f"the first run sent nothing: {first.communicate()[1]!r}")
        first.kill()
        first.wait(10)
    with http_inbox(secret) as hook:
        env = {
            "KEYSWEEP_NOTIFY_WEBHOOK_URL": hook.url,
            "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            "KEYSWEEP_STATE_DIR": str(state),
        }
        p = scan(r.path, env, "--notify")
        err = p.stderr.decode()
        assert p.returncode == 2, err
        assert "alert not delivered: 1 alert(s) held by another keysweep run" in err
        assert "run this scan again after that to send what it did not" in err
        assert "already sent before: 0" in err and hook.requests == []
        with sqlite3.connect(state / "notified.sqlite3") as db:  # 16 s later
            db.execute("UPDATE claims SET at = at - 16 WHERE holder IS NOT NULL")
        again = scan(r.path, env, "--notify")
        assert again.returncode == 1, again.stderr.decode()
        assert "alerts sent: webhook:alert 1" in again.stderr.decode()
        assert len(hook.requests) == 1
