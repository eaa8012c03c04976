"""Alerts, delivered to real receivers on loopback: SMTP with STARTTLS and login,
a Standard Webhooks endpoint that verifies signatures, a Slack-shaped endpoint."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from scanner.notify.channels import Delivery, EmailChannel, SlackChannel, WebhookChannel
from scanner.notify.dedup import Claim, DedupStore, MemoryDedup, SqliteDedup
from scanner.notify.dispatch import Notifier
from scanner.notify.message import Alert, Place
from tests.conftest import KEYSWEEP
from tests.helpers import Repo, github_token
from tests.notify_receivers import bodies_text, http_inbox, smtp_server, valid_block_kit


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def alert(i: int, owner: str = "owner@example.com", kind: str = "keyservice") -> Alert:
    return Alert(
        key_ident=f"key_{i}",
        fingerprint=f"{i:032x}",
        rule_id="mg-live-key",
        family="mg live API key",
        redacted=f"mg_live_{i:08d}…",
        owner_kind=kind,
        environment="live",
        org_id="org_1",
        project_id="proj_1",
        owner_email=owner,
        owner_name="Ann",
        url=f"https://github.com/o/r/blob/c{i}/f.py#L3",
        repo="o/r",
        commit=f"{i:040x}",
        path="f.py",
        line=3,
        pushed_at="2026-11-20T10:00:00Z",
        found_at="2026-11-23T10:00:00Z",
        action="revoked",
        revoked_at="2026-11-23T10:00:01Z",
        places=(Place(f"loc{i}", "o/r", f"{i:040x}", "f.py", 3, None),),
    )


@pytest.fixture
def env_ca(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    def use(ca_file: Path) -> None:
        monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))

    return use


def test_summary_above_25_per_recipient(tmp_path: Path, env_ca) -> None:  # type: ignore[no-untyped-def]
    secret = whsec()
    with smtp_server(tmp_path) as box, http_inbox(secret) as hook, http_inbox() as slack:
        env_ca(box.ca_file)
        channels = {
            "webhook": WebhookChannel(hook.url, secret),
            "slack": SlackChannel(slack.url),
            "email": EmailChannel(box.url, "keysweep <ks@example.com>"),
        }
        n = Notifier(channels, MemoryDedup(), sleep=lambda s: None)
        many = [alert(i) for i in range(30)] + [alert(100, owner="bob@example.com")]
        report = n.notify(many)
        assert report.sent["email:summary"] == 1 and report.sent["email:alert"] == 1
        assert report.sent["webhook:summary"] == 1 and report.sent["slack:summary"] == 1
        assert len(box.messages) == 2 and len(hook.requests) == 1 and len(slack.requests) == 1
        summary = next(m for m in box.messages if "ann" not in m["To"] and "owner@" in m["To"])
        assert "31" not in summary["Subject"] and "30 leaked keys" in summary["Subject"]
        body = json.loads(hook.requests[0]["body"])
        assert body["type"] == "keysweep.leak.summary" and body["data"]["count"] == 31
        assert hook.verified == 1 and valid_block_kit(json.loads(slack.requests[0]["body"]))


def test_failing_channel_is_retried_and_never_blocks_the_others(tmp_path: Path, env_ca) -> None:  # type: ignore[no-untyped-def]
    secret = whsec()
    with smtp_server(tmp_path) as box, http_inbox(secret) as hook, http_inbox() as slack:
        env_ca(box.ca_file)
        hook.fail_first = 2  # two 500s, then fine: delivered on the third try
        slack.always_fail = True
        dedup = MemoryDedup()
        channels = {
            "webhook": WebhookChannel(hook.url, secret),
            "slack": SlackChannel(slack.url),
            "email": EmailChannel(box.url, "ks@example.com"),
        }
        sleeps: list[float] = []
        n = Notifier(channels, dedup, retries=3, sleep=sleeps.append)
        report = n.notify([alert(1), alert(2)])
        assert report.sent["webhook:alert"] == 2 and report.sent["email:alert"] == 2
        assert report.failed["slack:alert"] == 2 and report.errors == [
            f"slack (127.0.0.1:{slack.url.split(':')[2].split('/')[0]}): HTTP 500"
        ]
        assert len(hook.requests) == 4 and hook.verified == 2  # 2 failures + 2 deliveries
        assert len(slack.requests) == 4  # 1 + 3 retries for the first, none for the second
        assert len(sleeps) == 2 + 3
        # The failed ones were not marked as said: a later run delivers them.
        slack.always_fail = False
        report = n.notify([alert(1), alert(2)])
        assert report.sent == {"slack:alert": 2} and report.skipped == 4


def test_bad_login_is_reported_not_retried(tmp_path: Path, env_ca) -> None:  # type: ignore[no-untyped-def]
    with smtp_server(tmp_path) as box:
        env_ca(box.ca_file)
        wrong = box.url.replace("s3cret-pass", "wrong")
        n = Notifier(
            {"email": EmailChannel(wrong, "ks@example.com")},
            MemoryDedup(),
            sleep=lambda s: pytest.fail("must not retry a refused login"),
        )
        report = n.notify([alert(1)])
        assert report.failed["email:alert"] == 1 and "login refused" in report.errors[0]
        assert box.messages == []


def test_tampered_webhook_body_is_rejected_by_the_verifier(tmp_path: Path) -> None:
    secret = whsec()
    with http_inbox(secret) as hook:
        Notifier({"webhook": WebhookChannel(hook.url, secret)}, MemoryDedup()).notify([alert(1)])
        (req,) = hook.requests
        Webhook(secret).verify(req["body"], req["headers"])  # genuine: verifies
        tampered = req["body"].replace(b"revoked", b"ignored")
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(tampered, req["headers"])
        with pytest.raises(WebhookVerificationError):
            Webhook(whsec()).verify(req["body"], req["headers"])  # another secret


def test_a_redone_alert_carries_the_same_webhook_id_and_message_id(  # type: ignore[no-untyped-def]
    tmp_path: Path, env_ca
) -> None:
    """A task redone after its claims were lost (Redis restarted inside its fsync window)
    sends the same message again; it goes out under the same Standard Webhooks
    ``webhook-id`` and email ``Message-ID``, so a receiver that deduplicates on them
    (as the Standard Webhooks spec asks) sees one message. Another alert gets another id."""
    secret = whsec()
    with smtp_server(tmp_path) as box, http_inbox(secret) as hook:
        env_ca(box.ca_file)
        channels = {
            "webhook": WebhookChannel(hook.url, secret),
            "email": EmailChannel(box.url, "keysweep <ks@example.com>"),
        }
        for _ in range(2):  # a fresh dedup store each time: the claims were lost
            Notifier(channels, MemoryDedup(), sleep=lambda s: None).notify([alert(1)])
        Notifier(channels, MemoryDedup(), sleep=lambda s: None).notify([alert(2)])
        hook_ids = [r["headers"]["webhook-id"] for r in hook.requests]
        mail_ids = [m["Message-ID"] for m in box.messages]
        assert len(hook_ids) == 3 and len(mail_ids) == 3
        assert hook_ids[0] == hook_ids[1] != hook_ids[2]
        assert mail_ids[0] == mail_ids[1] != mail_ids[2]
        assert mail_ids[0].startswith("<") and mail_ids[0].endswith("@example.com>")
        for r in hook.requests:
            Webhook(secret).verify(r["body"], r["headers"])  # still signed over that id


def dedup_contract(make: Callable[[float], DedupStore]) -> None:
    """What every claim store promises (``scanner.notify.dedup``), on fresh store objects
    each time so a store that forgets between processes fails."""
    ttl = 0.6
    assert make(ttl).claim("a", "h1") is Claim.TAKEN
    assert make(ttl).claim("a", "h1"), "the same holder again (a call retried): still its"
    assert make(ttl).claim("a", "h2") is Claim.BUSY, "pending for h1: not said, not h2's"
    assert make(ttl).hold(["a"], "h1") and make(ttl).hold(["a"], "h2") is Claim.BUSY
    make(ttl).release(["a"], "h2")  # not theirs: stays
    assert not make(ttl).claim("a", "h3")
    make(ttl).release(["a"], "h1")  # a failed delivery gives it back
    assert make(ttl).claim("a", "h3")
    make(ttl).confirm(["a"])
    assert make(ttl).hold(["a"], "h3") is Claim.SENT, "sent: nobody holds it any more"
    assert make(ttl).claim("a", "h4") is Claim.SENT
    make(ttl).release(["a"], "h3")
    # A pending claim whose holder died lapses and the redone work takes it ...
    assert make(ttl).claim("b", "dead")
    deadline = time.monotonic() + 10
    while not make(ttl).claim("b", "redo"):
        assert time.monotonic() < deadline, "a dead holder's pending claim never lapsed"
        time.sleep(0.05)
    assert not make(ttl).hold(["b"], "dead"), "the dead holder's turn is over"
    # ... but a sent one never does.
    make(ttl).confirm(["b"])
    lapsed = time.monotonic() + 2 * ttl
    while time.monotonic() < lapsed:
        assert make(ttl).claim("b", "late") is Claim.SENT
        time.sleep(0.1)


class Recorder:
    """A channel that keeps what it was asked to send (the claim logic under test)."""

    name = "webhook"

    def __init__(self) -> None:
        self.sent: list[Delivery] = []

    def send(self, delivery: Delivery) -> None:
        self.sent.append(delivery)


def test_one_batch_tells_each_key_once_per_channel() -> None:
    """The same finding twice in one batch is one alarm; the same key somewhere else in
    that batch is one follow-up (a notify call never counts its own claim as new)."""
    elsewhere = dataclasses.replace(
        alert(1), places=(Place("loc-elsewhere", "o/r2", "f" * 40, "g.py", 9, None),)
    )
    channel = Recorder()
    report = Notifier({"webhook": channel}, MemoryDedup()).notify([alert(1), alert(1), elsewhere])
    assert sorted(d.kind for d in channel.sent) == ["alert", "followup"]
    assert report.sent == {"webhook:alert": 1, "webhook:followup": 1} and report.skipped == 1


class Died(BaseException):
    """A sender killed mid-delivery: nothing after the send runs."""


class Dying(Recorder):
    def send(self, delivery: Delivery) -> None:
        self.sent.append(delivery)  # the receiver has it...
        raise Died  # ...and the sender dies before marking it sent


def test_an_alert_another_sender_died_holding_is_busy_until_its_claim_lapses() -> None:
    """A redelivered task that finds an alert pending for a sender that died (RabbitMQ
    redelivers at once, before the claim lapses) must not count it as said: it reports
    it busy (the task retries), and sends it once the claim has lapsed. The same key at
    a new place while the alarm is pending elsewhere is busy too, not a follow-up."""
    dedup = MemoryDedup(pending_ttl=0.3)
    with pytest.raises(Died):
        Notifier({"webhook": Dying()}, dedup).notify([alert(1)])
    elsewhere = dataclasses.replace(
        alert(1), places=(Place("loc-elsewhere", "o/r2", "f" * 40, "g.py", 9, None),)
    )
    channel = Recorder()
    report = Notifier({"webhook": channel}, dedup).notify([alert(1), elsewhere])
    assert (report.busy, report.skipped, channel.sent) == (2, 0, [])
    deadline = time.monotonic() + 10
    while report.busy:  # the task's retries, until the dead sender's claim has lapsed
        assert time.monotonic() < deadline, "a dead sender's claim kept the alert busy"
        time.sleep(0.05)
        report = Notifier({"webhook": channel}, dedup).notify([alert(1), elsewhere])
    # Said now, as one batch says it: the alarm, and the other place as its follow-up.
    assert report.sent == {"webhook:alert": 1, "webhook:followup": 1}
    assert sorted(d.kind for d in channel.sent) == ["alert", "followup"]
    again = Notifier({"webhook": channel}, dedup).notify([alert(1), elsewhere])
    assert (again.busy, again.skipped, len(channel.sent)) == (0, 2, 2)


def test_an_alert_whose_claim_another_sender_took_mid_batch_comes_back_busy() -> None:
    """A batch slow enough for its later claims to lapse: another sender takes one
    before this one sends it. That alert is busy for this batch (its claims given back,
    the task comes again), not skipped as said: the other sender may die with it."""
    dedup = MemoryDedup(pending_ttl=0.2)

    class SlowFirst(Recorder):
        def send(self, delivery: Delivery) -> None:
            super().send(delivery)
            if len(self.sent) == 1:
                time.sleep(0.3)  # alert(2)'s claim lapses; another sender takes it
                assert Notifier({"webhook": Recorder()}, dedup).plan([alert(2)], "other")[0]

    channel = SlowFirst()
    report = Notifier({"webhook": channel}, dedup).notify([alert(1), alert(2)])
    assert report.sent == {"webhook:alert": 1} and (report.busy, report.skipped) == (1, 0)
    deadline = time.monotonic() + 10
    while not channel.sent[1:]:  # the retry, once the other sender's claim has lapsed
        assert time.monotonic() < deadline
        time.sleep(0.05)
        Notifier({"webhook": channel}, dedup).notify([alert(1), alert(2)])
    assert [d.alerts[0].fingerprint for d in channel.sent] == [
        alert(1).fingerprint,
        alert(2).fingerprint,
    ]


def test_a_summary_one_of_whose_alerts_another_sender_said_meanwhile_still_says_the_rest() -> (
    None
):
    """30 alarms for Slack go as one summary. While the webhook's summary is out, this
    sender's Slack claims lapse and another sender says one of those alerts. The Slack
    summary must not be dropped as said: it comes back busy, and the retry tells Slack
    the 29 others (before, all 30 counted as one skipped and 29 were never told)."""
    dedup = MemoryDedup(pending_ttl=0.2)
    batch = [alert(i) for i in range(30)]

    class SlowWebhook(Recorder):
        def send(self, delivery: Delivery) -> None:
            super().send(delivery)
            time.sleep(0.3)  # this sender's Slack claims lapse; another says alert(0)
            other = Notifier({"slack": Recorder()}, dedup)
            planned, _, _ = other.plan([batch[0]], "other")
            dedup.confirm([k for _, _, claims in planned for k in claims])

    webhook, slack = SlowWebhook(), Recorder()
    channels = {"webhook": webhook, "slack": slack}
    report = Notifier(channels, dedup).notify(batch)  # type: ignore[dict-item]
    assert report.sent == {"webhook:summary": 1} and report.busy == 1 and slack.sent == []
    again = Notifier(channels, dedup).notify(batch)  # type: ignore[dict-item]
    assert again.sent == {"slack:summary": 1} and again.busy == 0
    told = {a.fingerprint for d in slack.sent for a in d.alerts}
    assert told == {a.fingerprint for a in batch[1:]}


def test_memory_and_sqlite_dedup_keep_the_claim_contract(tmp_path: Path) -> None:
    shared = MemoryDedup(0.6)
    dedup_contract(lambda ttl: shared)
    path = tmp_path / "state" / "n.sqlite3"
    dedup_contract(lambda ttl: SqliteDedup(path, pending_ttl=ttl))


def test_a_sqlite_claims_table_from_before_two_step_claims_still_counts_as_sent(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "n.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE claims (key TEXT PRIMARY KEY, at REAL)")
    db.execute("INSERT INTO claims VALUES ('old', 1.0)")
    db.commit()
    db.close()
    store = SqliteDedup(path, pending_ttl=0.0)
    assert not store.claim("old", "h") and store.claim("new", "h")


def test_an_alert_claimed_by_a_worker_that_died_before_sending_is_sent_by_the_redo(
    tmp_path: Path,
) -> None:
    """The notify worker claims, then dies before the message leaves: the ledger redoes
    the task after its lease, by when the pending claim has lapsed, and the redo sends
    the alert (once). Before two-step claims, the claim stood and the alert was lost."""
    secret = whsec()
    path = tmp_path / "n.sqlite3"
    with http_inbox(secret) as hook:
        dying = Notifier({"webhook": WebhookChannel(hook.url, secret)}, SqliteDedup(path, 0.3))
        planned, _, _ = dying.plan([alert(1)], "worker-that-died")
        assert planned and hook.requests == []  # claimed, and then the process was gone
        redo = Notifier({"webhook": WebhookChannel(hook.url, secret)}, SqliteDedup(path, 0.3))
        deadline = time.monotonic() + 10
        while not redo.notify([alert(1)]).sent:
            assert time.monotonic() < deadline, "the redo never sent the stranded alert"
            time.sleep(0.05)
        assert len(hook.requests) == 1
        assert redo.notify([alert(1)]).skipped == 1 and len(hook.requests) == 1


def test_scan_revoke_alerts_end_to_end(keyservice, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ks = keyservice
    minted = ks.mint(
        env="live",
        org_id="org_acme",
        project_id="proj_web",
        owner={"name": "Ann Owner", "email": "ann@acme.example"},
    )
    gh = github_token()
    r = Repo(tmp_path / "repo")
    r.write("app.py", f"KEY = '{minted['key']}'\n")
    r.write("ci.yml", f"token: {gh}\n")
    r.commit("leaks")
    secret = whsec()
    with smtp_server(tmp_path) as box, http_inbox(secret) as hook, http_inbox() as slack:
        env = {
            **os.environ,
            "KEYSWEEP_KEYSERVICE_URL": ks.url,
            "KEYSWEEP_KEYSERVICE_TOKEN": ks.token,
            "KEYSWEEP_NOTIFY_WEBHOOK_URL": hook.url,
            "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": secret,
            "KEYSWEEP_NOTIFY_SLACK_URL": slack.url,
            "KEYSWEEP_SMTP_URL": box.url,
            "KEYSWEEP_NOTIFY_FROM": "keysweep <sec@acme.example>",
            "KEYSWEEP_STATE_DIR": str(tmp_path / "state"),
            "SSL_CERT_FILE": str(box.ca_file),
        }

        def run() -> subprocess.CompletedProcess:
            return subprocess.run(
                [KEYSWEEP, "scan", str(r.path), "--revoke", "--format", "json"],
                capture_output=True,
                env=env,
                timeout=120,
            )

        first = run()
        assert first.returncode == 1, first.stderr.decode()
        # The owner: one email, plain text and HTML, with what happened and what to do.
        (mail,) = box.messages
        assert mail["X-Envelope-To"] == "ann@acme.example"
        assert minted["display_prefix"] in mail["Subject"]
        plain = mail.get_body(("plain",)).get_content()
        html = mail.get_body(("html",)).get_content()
        for text in (plain, html):
            assert "org_acme" in text and "proj_web" in text and "app.py:1" in text
            assert "Revoked by keysweep" in text and "Rotate the key" in text
        # The security team: both keys on the webhook (signed) and on Slack (Block Kit).
        assert hook.verified == 2 and hook.rejected == 0
        types = sorted(json.loads(q["body"])["data"]["key"]["rule_id"] for q in hook.requests)
        assert types == ["github-classic-token", "mg-live-key"]
        assert len(slack.requests) == 2
        assert all(valid_block_kit(json.loads(q["body"])) for q in slack.requests)
        # The audit trail records the owner alert.
        notified = (
            ks.client()
            .get("/v1/audit-events", params={"action": "api_key.leak_notified"})
            .json()["events"]
        )
        assert len(notified) == 1 and notified[0]["target"] == minted["display_prefix"]

        # Again: nothing new is said.
        second = run()
        assert second.returncode == 1
        assert len(box.messages) == 1 and len(hook.requests) == 2 and len(slack.requests) == 2
        assert "already sent before: 5" in second.stderr.decode()  # 3 routes + 2 routes

        # The revoked key shows up somewhere new: one short follow-up per channel.
        r.write("docs/setup.md", f"use {minted['key']}\n")
        r.commit("docs")
        third = run()
        assert third.returncode == 1
        assert len(box.messages) == 2 and "Follow-up" in box.messages[1]["Subject"]
        followups = [json.loads(q["body"]) for q in hook.requests[2:]]
        assert [f["type"] for f in followups] == ["keysweep.leak.followup"]
        assert len(slack.requests) == 3

        # No planted key in any message, header or output.
        everything = bodies_text(box, hook, slack) + first.stdout + first.stderr + third.stderr
        assert minted["key"].encode() not in everything and gh.encode() not in everything
