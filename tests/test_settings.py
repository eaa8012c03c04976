"""The one settings model: every key and variable the README documents takes effect,
from where the README says it may stand; a repository's own config cannot say where
keysweep sends things; bad keys and values are refused with a clear message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.settings import ConfigError, Settings, load_settings
from tests.conftest import KEYSWEEP, ROOT
from tests.helpers import mg_live
from tests.notify_receivers import http_inbox


@dataclass(frozen=True)
class Documented:
    file_key: str | None  # "disabled_rules", "[policy] live", "[[rules]]"; None: variable only
    variable: str
    set_by: str  # "repo" | "operator" | "environment"


def documented() -> list[Documented]:
    """The rows of the README's settings table."""
    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 3)]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or not cells[1].startswith("`KEYSWEEP_"):
            continue
        key = None if cells[0] == "—" else cells[0].strip("`")
        rows.append(Documented(key, cells[1].split("`")[1], cells[3]))
    return rows


ROWS = documented()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting leaks in from the machine running the tests."""
    for name in list(os.environ):
        if name.startswith("KEYSWEEP_") and not name.startswith("KEYSWEEP_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def test_the_readme_documents_every_setting_and_nothing_else() -> None:
    from scanner.partner.settings import ReportSettings, ServeSettings
    from workers.settings import WorkerSettings

    variables = {r.variable for r in ROWS}
    assert variables == set(WorkerSettings.env_names()) | set(ServeSettings.env_names()) | set(
        ReportSettings.env_names()
    ) | {"KEYSWEEP_CONFIG"}
    keys = {r.file_key for r in ROWS if r.file_key}
    described = {
        "[[rules]]" if k == ("rules",) else (f"[{k[0]}] {k[1]}" if len(k) == 2 else k[0])
        for k in Settings.FILE_KEYS
    }
    assert keys == described
    for r in ROWS:
        if r.file_key:
            field, trust = Settings.FILE_KEYS[_file_key_tuple(r.file_key)]
            assert r.set_by == trust.value, r
            assert Settings.env_name(field) == r.variable, r
        else:
            assert r.set_by == "environment", r


@pytest.mark.parametrize("value", ["mg-live-key,jwt", "mg-live-key, jwt", '["mg-live-key", "jwt"]'])
def test_list_variables_are_comma_separated_or_a_json_array(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README (Configuration): lists from a variable are comma-separated, or a JSON array."""
    from workers.settings import WorkerSettings

    monkeypatch.setenv("KEYSWEEP_DISABLED_RULES", value)
    assert load_settings().disabled_rules == ["mg-live-key", "jwt"]
    monkeypatch.setenv("KEYSWEEP_CLONE_HOSTS", value.replace("mg-live-key", "a.example"))
    assert list(WorkerSettings().clone_hosts) == ["a.example", "jwt"]


def test_the_readmes_defaults_are_the_codes() -> None:
    """Each concrete default in the README's settings table is what the model holds when
    nothing is set (the clean_env fixture has removed every KEYSWEEP_ variable)."""
    from scanner.partner.settings import ReportSettings, ServeSettings
    from workers.settings import WorkerSettings

    text = (ROOT / "README.md").read_text("utf-8")
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 3)]
    documented_defaults = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[1].startswith("`KEYSWEEP_"):
            documented_defaults[cells[1].strip("`")] = cells[2]
    actual: dict[str, object] = {}
    for model in (Settings, WorkerSettings, ServeSettings, ReportSettings):
        instance = model()
        for name in type(instance).model_fields:
            actual[model.env_name(name)] = getattr(instance, name)
    checked = 0
    for variable, cell in documented_defaults.items():
        if variable not in actual or "~" in cell or "if present" in cell:
            continue  # resolved elsewhere, each tested where it is used
        value = actual[variable]
        if cell == "none":
            assert value in (None, [], ()), variable
        elif cell.startswith("off"):
            assert value is False, variable
        else:
            shown = cell.strip("`")
            if isinstance(value, (list, tuple)):
                assert ",".join(map(str, value)) == shown, variable
            elif isinstance(value, (int, float)) and not isinstance(value, bool):
                assert float(shown) == value, variable
            else:
                assert str(value) == shown, variable
        checked += 1
    assert checked >= 45


def _file_key_tuple(key: str) -> tuple[str, ...]:
    if key == "[[rules]]":
        return ("rules",)
    m = re.fullmatch(r"\[(\w+)\] (\w+)", key)
    return (m.group(1), m.group(2)) if m else (key,)


# --- each setting, through what uses it --------------------------------------------------


def _tree(tmp_path: Path) -> Path:
    """A directory with one key in a.txt and one under skip/."""
    root = tmp_path / "tree"
    (root / "skip").mkdir(parents=True, exist_ok=True)
    (root / "a.txt").write_text(f"API_KEY={mg_live()}\n")
    (root / "skip" / "b.txt").write_text(f"API_KEY={mg_live()}\n")
    return root


def _scan(s: Settings, root: Path):  # type: ignore[no-untyped-def]
    from scanner.scan import ScanOptions, build_engine, scan_path

    return scan_path(root, build_engine(s), s, ScanOptions(history=False))


def _rule_ids(s: Settings) -> set[str]:
    from scanner.scan import build_engine

    return {r.id for r in build_engine(s).rules}


def _notify(s: Settings):  # type: ignore[no-untyped-def]
    from scanner.notify.dispatch import NotifySettings

    return NotifySettings.from_settings(s)


ACME_RULE = {
    "id": "acme-token",
    "description": "ACME internal token",
    "prefixes": ["acme_tok_"],
    "pattern": "(acme_tok_[A-Za-z0-9]{24})",
}


@dataclass
class Probe:
    toml: str  # the TOML value (or a table's body for [[rules]])
    env: str
    check: Callable[[Settings, Path], None]


def _token_file(tmp_path: Path) -> str:
    path = tmp_path / "ks-token"
    path.write_text("file-held-token\n")
    return str(path)


def _check_baseline(s: Settings, root: Path) -> None:
    from scanner.config import resolve_baseline

    assert resolve_baseline(None, s, root) == root / "custom-baseline.json"


def _check_hosts(s: Settings, root: Path) -> None:
    from scanner.sources.remote import DEFAULT_ALLOWED_HOSTS, UnsafeURLError, parse_remote

    try:
        parse_remote("https://git.example.com/a/b", [*DEFAULT_ALLOWED_HOSTS, *s.allowed_hosts])
    except UnsafeURLError as exc:
        raise AssertionError(f"refused: {exc}") from None


def _check_state_dir(s: Settings, root: Path) -> None:
    from scanner.notify.dedup import default_state_dir

    assert default_state_dir(s.state_dir) == Path("/tmp/ks-state-probe")


def _check_archive_depth(s: Settings, root: Path) -> None:
    import io
    import zipfile

    def zipped(name: str, data: bytes) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr(name, data)
        return buf.getvalue()

    (root / "nested.zip").write_bytes(zipped("inner.zip", zipped("k.env", b"K=1\n")))
    assert _scan(s, root).skipped.capped == ["nested.zip!inner.zip (depth > 1)"]


def _check_regex_timeout(s: Settings, root: Path) -> None:
    from scanner.scan import build_engine, gitleaks_keep

    assert build_engine(s).regex_timeout == 0.3
    assert s.regex_timeout == 0.3 and gitleaks_keep(s) is None  # no .gitleaks.toml here


def _check_prefilter(s: Settings, root: Path) -> None:
    from scanner.scan import build_engine

    assert build_engine(s).prefilter.name == "python"


PROBES: dict[str, Probe] = {
    "KEYSWEEP_DISABLED_RULES": Probe(
        '["mg-live-key"]', "mg-live-key", lambda s, r: _no("mg-live-key", _rule_ids(s))
    ),
    "KEYSWEEP_EXCLUDE_PATHS": Probe(
        '["skip/*"]',
        "skip/*",
        lambda s, r: _eq([f.location.path for f in _scan(s, r).findings], ["a.txt"]),
    ),
    "KEYSWEEP_ALLOWLIST_REGEXES": Probe(
        '["^mg_live_"]', "^mg_live_", lambda s, r: _eq(_scan(s, r).findings, [])
    ),
    "KEYSWEEP_MAX_FILE_SIZE": Probe(
        "10",
        "10",
        lambda s, r: _eq((_scan(s, r).findings, _scan(s, r).skipped.too_large >= 2), ([], True)),
    ),
    "KEYSWEEP_ARCHIVE_DEPTH": Probe("1", "1", _check_archive_depth),
    "KEYSWEEP_BASELINE": Probe('"custom-baseline.json"', "custom-baseline.json", _check_baseline),
    "KEYSWEEP_RULES": Probe(
        "\n".join(f"{k} = {json.dumps(v)}" for k, v in ACME_RULE.items()),
        json.dumps([ACME_RULE]),
        lambda s, r: _yes("acme-token", _rule_ids(s)),
    ),
    "KEYSWEEP_ALLOWED_HOSTS": Probe('["git.example.com"]', "git.example.com", _check_hosts),
    "KEYSWEEP_KEYSERVICE_URL": Probe(
        '"http://127.0.0.1:9"',
        "http://127.0.0.1:9",
        lambda s, r: _eq(s.keyservice()[0], "http://127.0.0.1:9"),
    ),
    "KEYSWEEP_KEYSERVICE_TOKEN": Probe(
        "", "env-held-token", lambda s, r: _eq(s.keyservice()[1], "env-held-token")
    ),
    "KEYSWEEP_KEYSERVICE_TOKEN_FILE": Probe(
        "TOKEN_FILE", "TOKEN_FILE", lambda s, r: _eq(s.keyservice()[1], "file-held-token")
    ),
    "KEYSWEEP_POLICY_LIVE": Probe(
        '"alert"', "alert", lambda s, r: _eq(_policy(s).mode("live"), "alert")
    ),
    "KEYSWEEP_POLICY_TEST": Probe(
        '"ignore"', "ignore", lambda s, r: _eq(_policy(s).mode("test"), "ignore")
    ),
    "KEYSWEEP_NOTIFY_WEBHOOK_URL": Probe(
        '"https://hooks.example.com/k"',
        "https://hooks.example.com/k",
        lambda s, r: _eq(_notify(s).webhook_url, "https://hooks.example.com/k"),
    ),
    "KEYSWEEP_NOTIFY_WEBHOOK_SECRET": Probe(
        '"whsec_probe"', "whsec_probe", lambda s, r: _eq(_notify(s).webhook_secret, "whsec_probe")
    ),
    "KEYSWEEP_NOTIFY_SLACK_URL": Probe(
        '"https://hooks.slack.test/x"',
        "https://hooks.slack.test/x",
        lambda s, r: _yes("slack", _notify(s).channels()),
    ),
    "KEYSWEEP_SMTP_URL": Probe(
        '"smtp://mail.test:2525"',
        "smtp://mail.test:2525",
        lambda s, r: _yes("email", _notify(s).channels()),
    ),
    "KEYSWEEP_NOTIFY_FROM": Probe(
        '"sec <sec@example.com>"',
        "sec <sec@example.com>",
        lambda s, r: _eq(_notify(s).from_addr, "sec <sec@example.com>"),
    ),
    "KEYSWEEP_STATE_DIR": Probe("", "/tmp/ks-state-probe", _check_state_dir),
    "KEYSWEEP_PREFILTER": Probe("", "python", _check_prefilter),
    "KEYSWEEP_REGEX_TIMEOUT": Probe("", "0.3", _check_regex_timeout),
}


def _eq(a: object, b: object) -> None:
    assert a == b


def _yes(x: object, container: object) -> None:
    assert x in container  # type: ignore[operator]


def _no(x: object, container: object) -> None:
    assert x not in container  # type: ignore[operator]


def _policy(s: Settings):  # type: ignore[no-untyped-def]
    from scanner.act import Policy

    return Policy(*s.policy())


def _write_toml(path: Path, key: str, value: str) -> None:
    if key == "[[rules]]":
        path.write_text(f"[[rules]]\n{value}\n")
        return
    m = re.fullmatch(r"\[(\w+)\] (\w+)", key)
    path.write_text(f"[{m.group(1)}]\n{m.group(2)} = {value}\n" if m else f"{key} = {value}\n")


SCANNER_ROWS = [r for r in ROWS if r.variable in PROBES]


def _params() -> list[tuple[Documented, str]]:
    out = []
    for r in SCANNER_ROWS:
        out.append((r, "variable"))
        if r.file_key:
            out.append((r, "file"))
    return out


@pytest.mark.parametrize(
    ("row", "route"), _params(), ids=lambda x: x.variable if isinstance(x, Documented) else x
)
def test_each_setting_takes_effect(
    row: Documented, route: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probe = PROBES[row.variable]
    root = _tree(tmp_path)
    default = load_settings(None, root)
    with pytest.raises(AssertionError):
        probe.check(default, root)  # without the setting, the effect is absent
    toml = probe.toml.replace("TOKEN_FILE", json.dumps(_token_file(tmp_path)))
    env = probe.env.replace("TOKEN_FILE", _token_file(tmp_path))
    if route == "variable":
        monkeypatch.setenv(row.variable, env)
    elif row.set_by == "repo":  # where the README says it may stand
        assert row.file_key is not None
        _write_toml(root / ".keysweep.toml", row.file_key, toml)
    else:
        assert row.file_key is not None
        operator = tmp_path / "operator.toml"
        _write_toml(operator, row.file_key, toml)
        monkeypatch.setenv("KEYSWEEP_CONFIG", str(operator))
    probe.check(load_settings(None, root), root)


def test_the_operator_file_is_found_at_its_documented_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    xdg = tmp_path / "xdg-config" / "keysweep"
    xdg.mkdir(parents=True)
    (xdg / "config.toml").write_text('[policy]\nlive = "alert"\n')
    assert load_settings().policy() == ("alert", "revoke")
    other = tmp_path / "elsewhere.toml"
    other.write_text('[policy]\ntest = "ignore"\n')
    monkeypatch.setenv("KEYSWEEP_CONFIG", str(other))
    assert load_settings().policy() == ("revoke", "ignore")  # KEYSWEEP_CONFIG replaces it
    monkeypatch.setenv("KEYSWEEP_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"KEYSWEEP_CONFIG: .*missing\.toml: no such file"):
        load_settings()


def test_strength_order_environment_then_file_then_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _tree(tmp_path)
    operator = tmp_path / "op.toml"
    operator.write_text('max_file_size = 100\nexclude_paths = ["x/*"]\n')
    monkeypatch.setenv("KEYSWEEP_CONFIG", str(operator))
    (root / ".keysweep.toml").write_text("max_file_size = 200\n")
    s = load_settings(None, root)
    assert (s.max_file_size, s.exclude_paths) == (200, ["x/*"])
    monkeypatch.setenv("KEYSWEEP_MAX_FILE_SIZE", "300")
    assert load_settings(None, root).max_file_size == 300
    explicit = tmp_path / "explicit.toml"
    explicit.write_text("disabled_rules = ['jwt']\n")
    s = load_settings(explicit, root)  # --config replaces the repository's own file
    assert (s.max_file_size, s.disabled_rules) == (300, ["jwt"])


def test_worker_settings_reach_the_code_that_uses_them(tmp_path: Path) -> None:
    """The background deployment's variables, observed in a fresh process through the
    objects that use them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")}
    env.update(
        {
            "XDG_CONFIG_HOME": str(tmp_path),
            "KEYSWEEP_BROKER_URL": "redis://127.0.0.1:6399/7",
            "KEYSWEEP_REDIS_URL": "redis://127.0.0.1:6398/5",
            "KEYSWEEP_REDIS_PREFIX": "probe-prefix",
            "KEYSWEEP_GITHUB_TOKENS": "tok-a, tok-b",
            "KEYSWEEP_GITHUB_API_URL": "http://127.0.0.1:9/api/",
            "KEYSWEEP_GITHUB_CONCURRENCY": "7",
            "KEYSWEEP_POLL_EVERY": "2.5",
            "KEYSWEEP_CLONE_HOSTS": "git.example.com",
            "KEYSWEEP_CLONE_HTTP_HOSTS": "127.0.0.1:9",
            "KEYSWEEP_METRICS_PORT": "0",
            "KEYSWEEP_HEARTBEAT_FILE": str(tmp_path / "alive"),
            "KEYSWEEP_LEDGER_LEASE": "11",
            "KEYSWEEP_LEDGER_GRACE": "22",
            "KEYSWEEP_SWEEP_EVERY": "3",
            "KEYSWEEP_PARK_PROBE_MAX": "44",
        }
    )
    probe = """
import json
from workers.app import app
from workers import ledger, metrics, state
from workers.github import github
from workers.settings import settings
from scanner.sources.remote import parse_remote
s = settings()
metrics.touch_heartbeat()
kw = state.client().connection_pool.connection_kwargs
parse_remote("http://127.0.0.1:9/a/b.git", [*s.clone_hosts, *s.clone_http_hosts],
             http_hosts=s.clone_http_hosts)
parse_remote("https://git.example.com/a/b", s.clone_hosts)
print(json.dumps({
    "broker": app.conf.broker_url,
    "redis": [kw["port"], kw["db"]],
    "key": state.key("x"),
    "tokens": list(github().pool.tokens),
    "api": github().base_url,
    "concurrency": s.github_concurrency,
    "schedule": app.conf.beat_schedule["poll-events"]["schedule"],
    "metrics_port": s.metrics_port,
    "ledger": list(__import__("dataclasses").astuple(ledger.timing()))[:4],
}))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {
        "broker": "redis://127.0.0.1:6399/7",
        "redis": [6398, 5],
        "key": "probe-prefix:x",
        "tokens": ["tok-a", "tok-b"],
        "api": "http://127.0.0.1:9/api",
        "concurrency": 7,
        "schedule": 2.5,
        "metrics_port": 0,
        "ledger": [11, 22, 3, 44],
    }
    assert (tmp_path / "alive").exists()


def test_cache_dir_is_where_the_hook_keeps_its_prefilter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner import hook_cache

    monkeypatch.setenv("KEYSWEEP_CACHE_DIR", str(tmp_path / "hook-cache"))
    assert hook_cache.cache_dir() == str(tmp_path / "hook-cache")
    assert load_settings().cache_dir == tmp_path / "hook-cache"


def test_the_readmes_keysweep_toml_works_as_written(tmp_path: Path) -> None:
    """The README's `.keysweep.toml`, copied into a repository: each line does what its
    comment says, and the baseline it names must exist (`keysweep baseline create`)."""
    from scanner.examples import expand
    from tests.helpers import Repo

    text = (ROOT / "README.md").read_text("utf-8")
    m = re.search(r"A repository's `\.keysweep\.toml`:\n\n```toml\n(.*?)```", text, re.S)
    assert m, "the README shows a repository's .keysweep.toml"
    repo = Repo(tmp_path / "r")
    repo.write(".keysweep.toml", m.group(1))
    repo.commit("keysweep settings")
    p = run("scan", cwd=repo.path)
    assert p.returncode == 2 and "/.keysweep-baseline.json: cannot read" in p.stderr
    assert run("baseline", "create", cwd=repo.path).returncode == 0
    assert run("scan", cwd=repo.path).returncode == 0
    acme = "acme_tok_" + expand("{base62:24}")
    repo.write("src/acme.py", f"TOKEN = '{acme}'\n")  # [[rules]] acme-token
    repo.write("src/session.py", f"SESSION = '{expand('{jwt}')}'\n")  # disabled_rules jwt
    repo.write("tests/fixtures/keys.py", f"KEY = '{mg_live()}'\n")  # exclude_paths
    repo.write("src/dev.py", f"KEY = 'mg_test_{'0' * 8}{expand('{b64url:24}')}'\n")  # allowlist
    repo.commit("settings at work")
    for scope in ([], ["--no-history"]):
        p = run("scan", *scope, "--format", "json", cwd=repo.path)
        found = [(f["rule_id"], f["source"]["path"]) for f in json.loads(p.stdout)]
        assert found == [("acme-token", "src/acme.py")], p.stderr
    assert run("baseline", "add", cwd=repo.path).returncode == 0
    assert run("scan", cwd=repo.path).returncode == 0
    # The same from the variable.
    missing = run("scan", cwd=repo.path, env={"KEYSWEEP_BASELINE": "elsewhere.json"})
    assert missing.returncode == 2 and "/elsewhere.json: cannot read" in missing.stderr


# --- whose rules apply, and what is refused ----------------------------------------------


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    base = {k: v for k, v in os.environ.items() if not k.startswith("KEYSWEEP_")}
    return subprocess.run(
        [KEYSWEEP, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, **(env or {})},
        check=False,
        timeout=120,
    )


def test_a_repository_cannot_say_where_alerts_and_lookups_go(tmp_path: Path) -> None:
    """A hostile .keysweep.toml names its own webhook and key service: ignored, said so,
    and nothing reaches them; the scan itself still works."""
    root = _tree(tmp_path)
    with http_inbox("whsec_" + "A" * 32) as hostile:
        (root / ".keysweep.toml").write_text(
            f'allowed_hosts = ["evil.example"]\n'
            f'[keyservice]\nurl = "{hostile.url}"\ntoken_file = "/etc/hostname"\n'
            f'[notify]\nwebhook_url = "{hostile.url}"\nwebhook_secret = "whsec_x"\n'
            '[policy]\nlive = "ignore"\n'
        )
        p = run("scan", str(root), "--no-history", "--format", "json")
        assert p.returncode == 1, p.stderr  # the findings, not an error
        assert len(json.loads(p.stdout)) == 2
        assert "ignored allowed_hosts, [keyservice] url, [keyservice] token_file" in p.stderr
        assert "[notify] webhook_url" in p.stderr and "[policy] live" in p.stderr
        assert "~/.config/keysweep/config.toml" in p.stderr
        assert hostile.requests == []  # the scan has finished: nothing was ever sent there
    s = load_settings(None, root)
    assert (s.keyservice(), s.notify_webhook_url, s.policy_live) == ((None, None), None, "revoke")


def test_the_same_settings_apply_from_config_or_the_operators_file(tmp_path: Path) -> None:
    text = '[policy]\nlive = "alert"\n[keyservice]\nurl = "http://127.0.0.1:9"\n'
    explicit = tmp_path / "ops.toml"
    explicit.write_text(text)
    s = load_settings(explicit, _tree(tmp_path))
    assert (s.policy_live, s.keyservice_url, s.warnings) == ("alert", "http://127.0.0.1:9", [])


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('exlude_paths = ["x"]\n', r"unknown key exlude_paths \(did you mean exclude_paths\?\)"),
        (
            "[policy]\nlve = 'alert'\n",
            r"unknown key \[policy\] lve \(did you mean \[policy\] live\?\)",
        ),
        (
            "[policy]\nlive = 'nuke'\n",
            r"\[policy\] live: Input should be 'revoke', 'alert' or 'ignore'",
        ),
        ("max_file_size = -1\n", r"max_file_size: Input should be greater than 0"),
        ("[keyservice]\ntoken = 'abc'\n", r"put no token in a config file"),
        ("disabled_rules = 'jwt'\n", r"disabled_rules: Input should be a valid list"),
        ("[notify]\n", r"ok"),
    ],
)
def test_bad_config_files_are_refused_with_a_clear_message(
    tmp_path: Path, toml: str, message: str
) -> None:
    cfg = tmp_path / "keysweep.toml"
    cfg.write_text(toml)
    (tmp_path / "a.txt").write_text("nothing here\n")
    p = run("scan", str(tmp_path / "a.txt"), "--config", str(cfg))
    if message == "ok":
        assert p.returncode == 0, p.stderr
        return
    assert p.returncode == 2
    assert re.search(f"keysweep: error: {re.escape(str(cfg))}: {message}", p.stderr), p.stderr


@pytest.mark.parametrize(
    ("command", "variable", "value", "message"),
    [
        (["scan", "-"], "KEYSWEEP_POLICY_LIVE", "nuke", "Input should be 'revoke', 'alert'"),
        (["scan", "-"], "KEYSWEEP_MAX_FILE_SIZE", "big", "unable to parse string as an integer"),
        (["scan", "-"], "KEYSWEEP_PREFILTER", "fast", "Input should be 'auto', 'hyperscan'"),
        (["status"], "KEYSWEEP_GITHUB_CONCURRENCY", "abc", "unable to parse string"),
        (["worker"], "KEYSWEEP_METRICS_PORT", "70000", "less than or equal to 65535"),
    ],
)
def test_bad_variables_are_refused_naming_the_variable(
    command: list[str], variable: str, value: str, message: str
) -> None:
    p = subprocess.run(
        [KEYSWEEP, *command],
        input="",
        capture_output=True,
        text=True,
        env={**os.environ, variable: value},
        check=False,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    assert f"keysweep: error: {variable}: " in p.stderr and message in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
