"""Both brokers keysweep supports, as deployed: Redis (the default) and RabbitMQ
(quorum queues, publisher confirms) in compose, Kubernetes and `make run`."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
OVERLAY = DEPLOY / "k8s" / "rabbitmq"


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_rabbitmq_queues_are_quorum_queues_with_confirms() -> None:
    from workers.app import QUEUES, broker_kind, queues_for

    assert broker_kind("amqp://guest:guest@127.0.0.1:5672/keysweep") == "rabbitmq"
    assert broker_kind("redis://127.0.0.1:6379/0") == "redis"
    qs = queues_for("rabbitmq")
    assert [q.name for q in qs] == list(QUEUES)
    for q in qs:
        assert q.queue_arguments == {"x-queue-type": "quorum"}
        # topic exchanges: Celery's native delayed delivery takes countdown retries
        assert q.exchange.type == "topic" and q.routing_key == q.name


def test_compose_rabbitmq_override_points_every_role_at_rabbitmq() -> None:
    base = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    over = yaml.safe_load((DEPLOY / "compose.rabbitmq.yaml").read_text())
    roles = [n for n in base["services"] if n.startswith("worker-")] + ["beat"]
    for role in roles:
        env = over["services"][role]["environment"]
        assert env["KEYSWEEP_BROKER_URL"].startswith("amqp://keysweep:")
        assert over["services"][role]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert "rabbitmq-data:/var/lib/rabbitmq" in over["services"]["rabbitmq"]["volumes"]


def test_kubernetes_overlay_scales_on_rabbitmq_queue_length() -> None:
    from workers.app import QUEUES

    kust = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    for res in kust["resources"][1:]:
        assert (OVERLAY / res).exists(), res
    for patch in kust["patches"]:
        assert (OVERLAY / patch["path"]).exists(), patch
    scaled = {d["metadata"]["name"]: d for d in docs(OVERLAY / "keda-rabbitmq.yaml")}
    base = {d["metadata"]["name"] for d in docs(DEPLOY / "k8s" / "keda.yaml")}
    assert set(scaled) == base == {f"worker-{q}" for q in QUEUES}
    for q in QUEUES:
        (trigger,) = scaled[f"worker-{q}"]["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq" and trigger["metadata"]["queueName"] == q
        assert trigger["metadata"]["mode"] == "QueueLength"
        assert trigger["authenticationRef"]["name"] == "keysweep-rabbitmq"
    (auth,) = docs(OVERLAY / "trigger-auth.yaml")
    assert auth["kind"] == "TriggerAuthentication"
    secret = docs(OVERLAY / "secret.example.yaml")[0]["stringData"]
    assert {t["key"] for t in auth["spec"]["secretTargetRef"]} <= set(secret)
    assert "KEYSWEEP_BROKER_URL" in secret
    (env_patch,) = yaml.safe_load((OVERLAY / "broker-env.yaml").read_text())
    assert env_patch["value"]["secretRef"]["name"] == "keysweep-rabbitmq"


def test_make_run_and_ci_know_rabbitmq() -> None:
    run = (DEPLOY / "local" / "run.sh").read_text()
    assert 'KEYSWEEP_BROKER:-redis}" = rabbitmq' in run
    assert "amqp://guest:guest@127.0.0.1:5672/keysweep" in run
    ci = (ROOT / ".ci" / "run").read_text()
    assert "rabbitmq-server -detached" in ci and "promtool" in ci
