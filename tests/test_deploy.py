"""The deployment artefacts in deploy/, checked against the code they run.

Docker, Kubernetes and systemd are not available here, so each artefact is
parsed and checked for what would break it in production: the right queue per
worker, stop grace periods longer than the longest task on that queue (read from
the Celery app), liveness probes that really notice a stale heartbeat (the
probes are run), Redis that never evicts, and only environment variables that
the code reads.
"""

from __future__ import annotations

import argparse
import configparser
import fnmatch
import json
import os
import re
import shlex
import subprocess
import time
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
HEARTBEAT = "/tmp/keysweep-worker-alive"
ENV_NAME = re.compile(r"\bKEYSWEEP_[A-Z0-9_]*[A-Z0-9]\b")
REQUIRED_ENV = {
    "KEYSWEEP_BROKER_URL",
    "KEYSWEEP_REDIS_URL",
    "KEYSWEEP_GITHUB_TOKENS",
    "KEYSWEEP_KEYSERVICE_URL",
    "KEYSWEEP_KEYSERVICE_TOKEN",
}


# --- what the code says ------------------------------------------------------------------


@cache
def queues() -> tuple[str, ...]:
    from workers.app import QUEUES

    return QUEUES


@cache
def longest_task() -> dict[str, int]:
    """Per queue, the largest hard time limit of the tasks routed to it."""
    import workers.pollers  # (registers the pollers)
    import workers.tasks  # noqa: F401  (registers the tasks)
    from workers.app import app

    out = dict.fromkeys(queues(), 0)
    for name, task in app.tasks.items():
        if not name.startswith(("workers.tasks.", "workers.pollers.")):
            continue
        queue = app.conf.task_default_queue
        for pattern, route in app.conf.task_routes.items():
            if fnmatch.fnmatchcase(name, pattern):
                queue = route["queue"]
                break
        limit = task.time_limit or app.conf.task_time_limit
        out[queue] = max(out[queue], int(limit))
    assert all(out.values()), out  # every queue has tasks with a limit
    return out


@cache
def code_env_names() -> frozenset[str]:
    """Every variable keysweep reads: the settings model's, and the few read by name."""
    from scanner.partner.settings import ReportSettings, ServeSettings
    from workers.settings import WorkerSettings

    names: set[str] = set(WorkerSettings.env_names())
    names |= set(ServeSettings.env_names()) | set(ReportSettings.env_names())
    for package in ("scanner", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            names |= set(ENV_NAME.findall(path.read_text(encoding="utf-8")))
    return frozenset(names)


class Parsed(Exception):
    def __init__(self, namespace: argparse.Namespace) -> None:
        self.namespace = namespace


def worker_cli(args: list[str]) -> argparse.Namespace:
    """``keysweep worker ARGS`` through the real parser, stopped right after parsing.

    An unknown option, a value of the wrong type or a bad choice fails here as it
    would in production; nothing is started.
    """
    from workers.cli import worker

    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self: argparse.ArgumentParser, *a: Any, **kw: Any) -> None:
        raise Parsed(original(self, *a, **kw))

    assert args[0] == "worker", args
    with (
        mock.patch.object(argparse.ArgumentParser, "parse_args", parse_then_stop),
        pytest.raises(Parsed) as exc,
    ):
        worker(args[1:])
    ns = exc.value.namespace
    assert set(ns.queues.split(",")) <= set(queues()), ns.queues
    return ns


def seconds(value: str | int) -> int:
    """'16m', '150s', '1m30s', '960', '16min' -> seconds."""
    if isinstance(value, int):
        return value
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)(?:m|min))?(?:(\d+)s?)?", value.strip())
    assert parts and value.strip(), value
    h, m, s = (int(x or 0) for x in parts.groups())
    return h * 3600 + m * 60 + s


def probe_passes(cmd: str | list[str], heartbeat: Path) -> bool:
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    assert HEARTBEAT in text, cmd
    if isinstance(cmd, str):
        argv = ["sh", "-c", cmd.replace(HEARTBEAT, str(heartbeat))]
    else:
        argv = [c.replace(HEARTBEAT, str(heartbeat)) for c in cmd]
    return subprocess.run(argv, capture_output=True, timeout=10).returncode == 0


def check_liveness(cmd: str | list[str], tmp_path: Path) -> None:
    """Run the probe: it fails with no heartbeat, passes fresh, fails a stale one."""
    text = cmd if isinstance(cmd, str) else " ".join(cmd)
    assert "celery" not in text and "inspect" not in text, cmd
    beat = tmp_path / f"alive-{len(list(tmp_path.iterdir()))}"
    assert not probe_passes(cmd, beat), "passes with no heartbeat file"
    beat.touch()
    assert probe_passes(cmd, beat), "fails with a fresh heartbeat"
    stale = time.time() - 120
    os.utime(beat, (stale, stale))
    assert not probe_passes(cmd, beat), "passes with a two-minute-old heartbeat"


# --- every artefact ----------------------------------------------------------------------


def deploy_files() -> list[Path]:
    """The production artefacts (deploy/keyservice and deploy/local are dev tools)."""
    top = ["Dockerfile", "Dockerfile.dockerignore", "compose.yaml", "dev.env", "README.md"]
    k8s = sorted(p for p in K8S.rglob("*") if p.is_file())  # the rabbitmq/ overlay too
    files = [DEPLOY / name for name in top] + k8s + sorted(SYSTEMD.iterdir())
    files.append(DEPLOY / "compose.rabbitmq.yaml")
    assert all(p.is_file() for p in files)
    return files


def test_every_keysweep_variable_in_deploy_is_read_by_the_code() -> None:
    code = code_env_names()
    assert {"KEYSWEEP_BROKER_URL", "KEYSWEEP_METRICS_PORT", "KEYSWEEP_HEARTBEAT_FILE"} <= code
    used: dict[str, set[str]] = {}
    for path in deploy_files():
        for name in ENV_NAME.findall(path.read_text(encoding="utf-8")):
            used.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert used.keys() >= REQUIRED_ENV
    unknown = {name: sorted(files) for name, files in used.items() if name not in code}
    assert unknown == {}, "variables no code reads"


def test_every_yaml_parses() -> None:
    files = [DEPLOY / "compose.yaml", *sorted(K8S.glob("*.yaml"))]
    assert len(files) >= 12
    for path in files:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
        assert docs and all(isinstance(d, dict) for d in docs), path


def test_no_key_shaped_value_in_deploy(tmp_path: Path) -> None:
    from scanner.config import Config
    from scanner.scan import ScanOptions, build_engine, scan_path
    from tests.helpers import github_token

    config = Config()
    engine = build_engine(config, low_confidence=True)
    opts = ScanOptions(history=False, low_confidence=True)
    found = scan_path(DEPLOY, engine, config, opts).findings
    assert [(f.rule_id, f.location.path, f.location.line) for f in found] == []
    # The same scan does catch a real-looking value in the secret template.
    text = (K8S / "secret.example.yaml").read_text(encoding="utf-8")
    (tmp_path / "secret.yaml").write_text(text.replace("REPLACE_ME", github_token(), 1))
    assert len(scan_path(tmp_path, engine, config, opts).findings) == 1


# --- Dockerfile --------------------------------------------------------------------------


@cache
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    out = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    instr = dockerfile()
    last = max(i for i, (word, _) in enumerate(instr) if word == "FROM")
    return instr[last:]


def test_dockerfile_is_multi_stage_on_python_311_slim() -> None:
    froms = [args for word, args in dockerfile() if word == "FROM"]
    assert len(froms) == 2
    assert all(f.split()[0] == "python:3.11-slim" for f in froms)
    builder = froms[0].split()[-1]
    wheel = [a for w, a in dockerfile() if w == "RUN" and "pip wheel" in a]
    assert len(wheel) == 1
    extras = set(re.search(r"\.\[([a-z,]+)\]", wheel[0])[1].split(","))  # type: ignore[index]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert extras == {"workers", "service"} <= project["optional-dependencies"].keys()
    runs = " ".join(a for w, a in final_stage() if w == "RUN")
    assert re.search(r"apt-get install [^&]*\bgit\b", runs)
    assert f"from={builder}" in runs and "pip install" in runs


def test_dockerfile_runs_keysweep_as_a_non_root_user() -> None:
    stage = final_stage()
    (user,) = [a for w, a in stage if w == "USER"]
    uid = user.split(":")[0]
    assert uid not in ("root", "0") and uid.isdigit()  # numeric: runAsNonRoot can verify it
    runs = " ".join(a for w, a in stage if w == "RUN")
    assert re.search(rf"useradd [^&]*--uid {uid}\b[^&]*\bkeysweep\b", runs)
    assert ("WORKDIR", "/home/keysweep") in stage
    assert [json.loads(a) for w, a in stage if w == "ENTRYPOINT"] == [["keysweep"]]
    assert [json.loads(a) for w, a in stage if w == "CMD"] == [["worker"]]
    env = " ".join(a for w, a in stage if w == "ENV")
    for setting in (
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        "PROMETHEUS_MULTIPROC_DIR=/tmp/metrics",
        f"KEYSWEEP_HEARTBEAT_FILE={HEARTBEAT}",
        "KEYSWEEP_METRICS_PORT=9808",
    ):
        assert setting in env.split(), setting
    # The multiprocess directory exists for roles that do not create it (beat).
    assert re.search(r"install -d -o keysweep -g keysweep [^&]*/tmp/metrics", runs)


def test_dockerfile_healthcheck_reads_the_heartbeat(tmp_path: Path) -> None:
    (check,) = [a for w, a in final_stage() if w == "HEALTHCHECK"]
    cmd = check.split(" CMD ", 1)[1]
    check_liveness(cmd, tmp_path)


def test_dockerfile_copies_what_exists_and_the_ignore_file_lets_it_in() -> None:
    sources = []
    for word, args in dockerfile():
        if word == "COPY" and "--from" not in args:
            sources += [s for s in shlex.split(args)[:-1] if not s.startswith("--")]
    assert "deploy/keyservice" in sources
    for src in sources:
        assert (ROOT / src).exists(), src
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
    assert patterns[0] == "**"  # nothing enters the context unless listed
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    for src in sources:
        assert src.rstrip("/") in allowed, src


# --- compose -----------------------------------------------------------------------------


@cache
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def dotenv(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def test_compose_has_one_worker_per_queue_on_the_keysweep_image() -> None:
    services = compose()["services"]
    image = services["beat"]["image"]
    for q in queues():
        svc = services[f"worker-{q}"]
        assert svc["image"] == image
        assert svc["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert "entrypoint" not in svc  # the image's ENTRYPOINT: keysweep
        assert "profiles" not in svc
        assert worker_cli(svc["command"]).queues == q
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["beat"]["command"] == ["beat"]
    assert "entrypoint" not in services["beat"]


def test_compose_stop_grace_outlasts_the_longest_task() -> None:
    services = compose()["services"]
    for q, limit in longest_task().items():
        assert seconds(services[f"worker-{q}"]["stop_grace_period"]) > limit, q
    assert seconds(services["worker-fetch"]["stop_grace_period"]) >= 15 * 60


def test_compose_redis_is_append_only_and_never_evicts() -> None:
    redis = compose()["services"]["redis"]
    assert redis["image"].split(":")[1].startswith("7")
    cmd = redis["command"]
    assert cmd[0] == "redis-server"
    assert cmd[cmd.index("--appendonly") + 1] == "yes"
    assert cmd[cmd.index("--appendfsync") + 1] == "always"
    assert cmd[cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert any(v.split(":")[1] == "/data" for v in redis["volumes"])
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_healthchecks(tmp_path: Path) -> None:
    services = compose()["services"]
    image = services["beat"]["image"]
    for q in queues():
        test = services[f"worker-{q}"]["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL"
        check_liveness(test[1], tmp_path)
    # Other roles on the image have no heartbeat: they must not keep the
    # image's HEALTHCHECK, or they would be reported unhealthy forever.
    for name, svc in services.items():
        if svc.get("image") == image and svc.get("command", ["worker"])[0] != "worker":
            assert "healthcheck" in svc, name
            assert HEARTBEAT not in json.dumps(svc["healthcheck"]), name


def test_compose_environment() -> None:
    doc = compose()
    env = doc["x-keysweep-env"]
    assert env.keys() >= REQUIRED_ENV
    assert urlsplit(env["KEYSWEEP_BROKER_URL"]).hostname == "redis"
    assert env["KEYSWEEP_BROKER_URL"] != env["KEYSWEEP_REDIS_URL"]
    assert env["KEYSWEEP_HEARTBEAT_FILE"] == HEARTBEAT
    assert env["KEYSWEEP_GITHUB_TOKENS"].startswith("${KEYSWEEP_GITHUB_TOKENS")
    for q in queues():
        assert doc["services"][f"worker-{q}"]["environment"] == env


def test_compose_profiles_and_the_dev_stack() -> None:
    services = compose()["services"]
    assert services["flower"]["profiles"] == ["flower"]
    assert "--broker=redis://redis:6379/0" in services["flower"]["command"]
    ks, sim = services["keyservice"], services["github-sim"]
    assert ks["profiles"] == sim["profiles"] == ["dev"]
    # The key service runs from the copy the Dockerfile puts at /app/deploy/keyservice.
    script = ks["entrypoint"][1]
    assert script.startswith("/app/") and (ROOT / script.removeprefix("/app/")).is_file()
    assert ("COPY", "deploy/keyservice /app/deploy/keyservice") in dockerfile()
    assert ks["command"][ks["command"].index("--db") + 1].startswith("/data/")
    assert sim["entrypoint"] == ["python", "-m", "tests.sim"]
    assert sim["working_dir"] == "/src" and "..:/src:ro" in sim["volumes"]
    # The simulator links to the address it listens on: the workers must use it.
    cmd = sim["command"]
    host, port = cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1]
    assert sim["networks"]["default"]["ipv4_address"] == host
    (subnet,) = compose()["networks"]["default"]["ipam"]["config"]
    import ipaddress

    assert ipaddress.ip_address(host) in ipaddress.ip_network(subnet["subnet"])
    dev = dotenv(DEPLOY / "dev.env")
    assert dev["KEYSWEEP_GITHUB_API_URL"] == f"http://{host}:{port}"
    assert dev["KEYSWEEP_CLONE_HTTP_HOSTS"] == f"{host}:{port}"
    ks_port = ks["command"][ks["command"].index("--port") + 1]
    assert cmd[cmd.index("--keyservice-url") + 1] == f"http://keyservice:{ks_port}"
    assert dev["KEYSWEEP_KEYSERVICE_URL"] == f"http://keyservice:{ks_port}"
    # dev.env sets every variable compose.yaml requires (${NAME:?...}).
    text = (DEPLOY / "compose.yaml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{(\w+):\?", text))
    assert required == REQUIRED_ENV - {"KEYSWEEP_BROKER_URL", "KEYSWEEP_REDIS_URL"}
    assert dev.keys() >= required


# --- Kubernetes --------------------------------------------------------------------------


@cache
def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is None:
                continue
            name = doc.get("metadata", {}).get("name", path.stem)
            assert (doc["kind"], name) not in out, (path, doc["kind"], name)
            out[(doc["kind"], name)] = doc
    return out


def configmap() -> dict[str, str]:
    return k8s()[("ConfigMap", "keysweep")]["data"]


def pod(kind: str, name: str) -> dict[str, Any]:
    return k8s()[(kind, name)]["spec"]["template"]


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    kust = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = kust["resources"]
    assert len(listed) == len(set(listed))
    for res in listed:
        assert (K8S / res).is_file(), res
    expected = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert set(listed) == expected
    assert kust["namespace"] == k8s()[("Namespace", kust["namespace"])]["metadata"]["name"]
    images = {i["name"] for i in kust["images"]}
    for (kind, name), doc in k8s().items():
        if kind in ("Deployment", "StatefulSet"):
            for c in doc["spec"]["template"]["spec"]["containers"]:
                if c["image"].split(":")[0] not in ("redis",):
                    assert c["image"] in images, (name, c["image"])


def test_k8s_one_worker_deployment_per_queue() -> None:
    cm = configmap()
    secret = k8s()[("Secret", "keysweep")]
    for q in queues():
        spec = pod("Deployment", f"worker-{q}")["spec"]
        (c,) = spec["containers"]
        assert "command" not in c  # the image's ENTRYPOINT: keysweep
        ns = worker_cli(c["args"])
        assert ns.queues == q
        # The same process count as in compose.yaml.
        assert (
            ns.concurrency
            == worker_cli(compose()["services"][f"worker-{q}"]["command"]).concurrency
        )
        assert spec["terminationGracePeriodSeconds"] > longest_task()[q], q
        refs = {(k, v["name"]) for e in c["envFrom"] for k, v in e.items()}
        assert refs == {("configMapRef", "keysweep"), ("secretRef", secret["metadata"]["name"])}
        res = c["resources"]
        assert {"cpu", "memory"} <= res["requests"].keys() and "memory" in res["limits"]
    fetch = pod("Deployment", "worker-fetch")["spec"]
    assert fetch["terminationGracePeriodSeconds"] > 900
    assert cm.keys() | secret["stringData"].keys() >= REQUIRED_ENV


def test_k8s_worker_probes_and_metrics(tmp_path: Path) -> None:
    cm = configmap()
    assert cm["KEYSWEEP_HEARTBEAT_FILE"] == HEARTBEAT
    port = int(cm["KEYSWEEP_METRICS_PORT"])
    for q in queues():
        template = pod("Deployment", f"worker-{q}")
        (c,) = template["spec"]["containers"]
        check_liveness(c["livenessProbe"]["exec"]["command"], tmp_path)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        ready = c["readinessProbe"]["tcpSocket"]["port"]
        assert ports.get(ready, ready) == port
        notes = template["metadata"]["annotations"]
        assert notes["prometheus.io/scrape"] == "true"
        assert int(notes["prometheus.io/port"]) == port
        assert notes["prometheus.io/path"] == "/metrics"
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            text = json.dumps(c.get(probe, {}))
            assert "celery" not in text and "inspect" not in text


def test_k8s_pods_run_non_root_on_a_read_only_root() -> None:
    uid = int(next(a for w, a in final_stage() if w == "USER").split(":")[0])
    multiproc = configmap()["PROMETHEUS_MULTIPROC_DIR"]
    names = [f"worker-{q}" for q in queues()] + ["beat", "serve", "reporter"]
    for name in names:
        spec = pod("Deployment", name)["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == uid
        (c,) = spec["containers"]
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        assert c["securityContext"]["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        # /tmp for clones and the heartbeat; the multiprocess directory must exist
        # before prometheus_client writes to it (beat does not create it).
        for path in ("/tmp", multiproc):
            assert "emptyDir" in volumes[mounts[path]], (name, path)


def test_k8s_beat_is_a_single_replica() -> None:
    beat = k8s()[("Deployment", "beat")]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"]["type"] == "Recreate"
    (c,) = beat["template"]["spec"]["containers"]
    assert c["args"] == ["beat"] and "command" not in c


def test_k8s_keda_scales_each_worker_on_its_queue() -> None:
    cm = configmap()
    broker = urlsplit(cm["KEYSWEEP_BROKER_URL"])
    svc = k8s()[("Service", broker.hostname)]
    namespace = yaml.safe_load((K8S / "kustomization.yaml").read_text())["namespace"]
    redis_port = svc["spec"]["ports"][0]["port"]
    assert broker.port in (None, redis_port)
    scaled = {n: d for (k, n), d in k8s().items() if k == "ScaledObject"}
    assert len(scaled) == len(queues())
    pdbs = {n: d for (k, n), d in k8s().items() if k == "PodDisruptionBudget"}
    for q in queues():
        (so,) = [d for d in scaled.values() if d["spec"]["scaleTargetRef"]["name"] == f"worker-{q}"]
        assert so["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
        (trigger,) = so["spec"]["triggers"]
        meta = trigger["metadata"]
        assert trigger["type"] == "redis"
        assert meta["listName"] == q
        assert int(meta["listLength"]) > 0
        assert int(meta["databaseIndex"]) == int(broker.path.strip("/") or 0)
        # KEDA's operator runs in another namespace: the Service's full name.
        assert meta["address"] == f"{svc['metadata']['name']}.{namespace}.svc:{redis_port}"
        lo, hi = so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]
        # A budget of minAvailable 1 on a single replica would block every drain.
        (budget,) = [
            d
            for d in pdbs.values()
            if d["spec"]["selector"]["matchLabels"].items()
            <= pod("Deployment", f"worker-{q}")["metadata"]["labels"].items()
        ]
        assert budget["spec"]["minAvailable"] == 1
        assert hi >= lo > budget["spec"]["minAvailable"]


def test_k8s_pdb_selects_exactly_its_worker() -> None:
    pdbs = [d for (k, _), d in k8s().items() if k == "PodDisruptionBudget"]
    assert len(pdbs) == len(queues()) + 1  # and keysweep serve
    deployments = {n: pod("Deployment", n) for (k, n) in k8s() if k == "Deployment"}
    for budget in pdbs:
        sel = budget["spec"]["selector"]["matchLabels"].items()
        chosen = [n for n, t in deployments.items() if sel <= t["metadata"]["labels"].items()]
        assert chosen == [budget["metadata"]["name"]], chosen


def test_k8s_redis_is_persistent_append_only_and_never_evicts() -> None:
    sts = k8s()[("StatefulSet", "redis")]
    svc = k8s()[("Service", "redis")]
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert svc["spec"]["selector"].items() <= spec["template"]["metadata"]["labels"].items()
    (c,) = spec["template"]["spec"]["containers"]
    assert c["image"].split(":")[1].startswith("7")
    args = c["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--appendfsync") + 1] == "always"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    (claim,) = spec["volumeClaimTemplates"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in c["volumeMounts"]
    for var in ("KEYSWEEP_BROKER_URL", "KEYSWEEP_REDIS_URL"):
        assert urlsplit(configmap()[var]).hostname == svc["metadata"]["name"]


def test_k8s_secret_template_holds_placeholders_only() -> None:
    secret = k8s()[("Secret", "keysweep")]
    assert "data" not in secret
    values = secret["stringData"]
    assert {
        "KEYSWEEP_KEYSERVICE_TOKEN",
        "KEYSWEEP_GITHUB_TOKENS",
        "KEYSWEEP_NOTIFY_WEBHOOK_SECRET",
        "KEYSWEEP_SMTP_URL",
    } <= values.keys()
    assert set(values.values()) == {"REPLACE_ME"}
    # Secrets never sit in the ConfigMap.
    assert not {k for k in configmap() if re.search(r"TOKEN|SECRET|SMTP|SLACK", k)}


# --- systemd -----------------------------------------------------------------------------


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Every value of every key (systemd allows repeated keys; configparser keeps one)."""
    text = (SYSTEMD / name).read_text(encoding="utf-8")
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    assert parser.has_section("Unit") and parser.has_section("Service")
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key, []).append(value)
    return out


def check_common(service: dict[str, list[str]]) -> None:
    assert "/etc/keysweep/keysweep.env" in service["EnvironmentFile"]
    assert service["User"] == ["keysweep"]
    assert service["Restart"] == ["always"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["KillMode"] == ["mixed"]  # SIGTERM to the main process: warm shutdown
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
    }.items():
        assert service[key] == [value], key
    assert service["ReadWritePaths"]
    home = [v for v in service["Environment"] if v.startswith("HOME=")]
    assert home == [f"HOME=/var/lib/{service['StateDirectory'][0]}"]


def test_systemd_worker_template() -> None:
    service = unit("keysweep-worker@.service")["Service"]
    check_common(service)
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert argv[0].startswith("/") and Path(argv[0]).name == "keysweep"
    # %I: the instance unescaped, so that keysweep-worker@poll\x2cfetch means "poll,fetch".
    assert argv[1:4] == ["worker", "--queues", "%I"]
    for q in queues():
        args = [q if a == "%I" else a for a in argv[1:] if not a.startswith("$")]
        assert worker_cli(args).queues == q
    assert seconds(service["TimeoutStopSec"][0]) > max(longest_task().values())


def test_systemd_beat_unit() -> None:
    service = unit("keysweep-beat.service")["Service"]
    check_common(service)
    (exec_start,) = service["ExecStart"]
    argv = shlex.split(exec_start)
    assert Path(argv[0]).name == "keysweep" and argv[1:] == ["beat"]
    # beat imports the task modules: their metrics directory must exist.
    (runtime,) = service["RuntimeDirectory"]
    assert f"PROMETHEUS_MULTIPROC_DIR=%t/{runtime}" in service["Environment"]


def test_systemd_env_example() -> None:
    env = dotenv(SYSTEMD / "keysweep.env.example")
    assert env.keys() >= REQUIRED_ENV
    assert all(env[k] for k in REQUIRED_ENV)
    assert {env["KEYSWEEP_GITHUB_TOKENS"], env["KEYSWEEP_KEYSERVICE_TOKEN"]} == {"REPLACE_ME"}


# --- keysweep serve and the credential reporter --------------------------------------------


def test_k8s_serve_probes_service_and_budget() -> None:
    from scanner.partner.app import GITHUB_PATH

    template = pod("Deployment", "serve")
    (c,) = template["spec"]["containers"]
    assert c["args"][0] == "serve"
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["args"][c["args"].index("--port") + 1] == str(ports["http"])
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert k8s()[("Deployment", "serve")]["spec"]["replicas"] >= 2
    svc = k8s()[("Service", "serve")]["spec"]
    assert svc["selector"].items() <= template["metadata"]["labels"].items()
    assert svc["ports"][0]["targetPort"] == "http"
    assert k8s()[("PodDisruptionBudget", "serve")]["spec"]["minAvailable"] == 1
    assert GITHUB_PATH in (K8S / "serve.yaml").read_text(encoding="utf-8")


def test_only_the_reporter_mounts_its_private_key() -> None:
    secret = k8s()[("Secret", "keysweep-reporter")]
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}
    mounting = []
    for (kind, name), doc in k8s().items():
        if kind != "Deployment":
            continue
        vols = doc["spec"]["template"]["spec"].get("volumes", [])
        if any(v.get("secret", {}).get("secretName") == "keysweep-reporter" for v in vols):
            mounting.append(name)
    assert mounting == ["reporter"]
    rep = k8s()[("Deployment", "reporter")]["spec"]
    assert rep["replicas"] == 1 and rep["strategy"]["type"] == "Recreate"
    (c,) = rep["template"]["spec"]["containers"]
    assert c["args"] == ["report-credentials"]
    (env,) = [e for e in c["env"] if e["name"] == "KEYSWEEP_REPORT_PRIVATE_KEY_FILE"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert env["value"].startswith(mounts["reporter-key"] + "/")
    assert configmap()["KEYSWEEP_REPORT_CREDENTIALS"] == "1"  # on in the background deployment


def test_compose_serve_and_reporter() -> None:
    services = compose()["services"]
    serve = services["serve"]
    assert serve["command"][0] == "serve" and serve["ports"] == ["127.0.0.1:8080:8080"]
    assert "/healthz" in json.dumps(serve["healthcheck"])
    assert services["reporter"]["command"] == ["report-credentials"]
    assert services["reporter"]["secrets"] == ["reporter_key"]
    assert not any(
        "reporter_key" in json.dumps(s.get("secrets", []))
        for n, s in services.items()
        if n != "reporter"
    )
    assert compose()["x-keysweep-env"]["KEYSWEEP_REPORT_CREDENTIALS"].startswith(
        "${KEYSWEEP_REPORT_CREDENTIALS:-1"
    )
    sim = services["github-sim"]["command"]
    assert sim[sim.index("--partner-url") + 1] == "http://serve:8080/github/secret-scanning"
