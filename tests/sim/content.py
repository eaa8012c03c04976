"""Realistic filler: code, config and prose in several languages, names, paths.

Everything here is built from small word lists with a seeded ``random.Random``,
so a ``--seed`` run serves the same documents (keys aside: they come from the
key service or ``scanner.examples.expand`` and are fresh every run).

The text never contains anything a keysweep rule looks for (no provider
prefixes, no ``"secret_key"``/``"app_id"`` pairs, no ``SYNTH_API_KEY``): a
document without a planted key must scan clean, which ``tests/test_sim.py``
checks with the real engine.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NOUNS = _words(
    "user order invoice payment session account message report widget cart product customer "
    "ticket event job task record profile device metric cache queue worker upload batch project "
    "team member comment post feed channel note shipment address plan subscription schedule "
    "image document search index rule policy region cluster node volume backup build release "
    "artifact pipeline stage step lease quota tenant webhook asset catalog price discount"
)
VERBS = _words(
    "get fetch load save update create delete sync parse render validate build send process "
    "handle compute resolve refresh import export list find merge normalize format publish "
    "schedule retry enqueue archive restore collect prune"
)
ADJECTIVES = _words(
    "active pending stale remote local cached primary default internal public shared legacy "
    "quick tiny bright silent rapid hidden frozen golden lucky clever"
)
FIRST_NAMES = _words(
    "Ada Grace Linus Margaret Alan Barbara Ken Dennis Frances Edsger Donald Radia Guido Yukihiro "
    "Sophie Hedy Katherine Tim Anita Leslie Joan Niklaus Brian Bjarne Rasmus Lars Mina Priya "
    "Kenji Ana Omar Fatima Chen Olga Tomas Ines"
)
LAST_NAMES = _words(
    "Lovelace Hopper Torvalds Hamilton Turing Liskov Thompson Ritchie Allen Dijkstra Knuth "
    "Perlman Rossum Matsumoto Wilson Lamarr Johnson Lee Borg Lamport Clarke Wirth Kernighan "
    "Stroustrup Lerdorf Bak Okafor Sharma Tanaka Silva Haddad Rahman Wei Petrova Novak Duarte"
)
PY_MODULES = ("os", "json", "logging", "time", "pathlib", "datetime", "typing", "functools")
PY_THIRD = ("httpx", "requests", "pydantic", "sqlalchemy", "redis", "click", "celery", "attrs")
JS_MODULES = ("express", "axios", "lodash", "dayjs", "zod", "pino", "ioredis", "react")
GO_MODULES = ("context", "fmt", "net/http", "time", "errors", "encoding/json", "strings", "log")
ENVS = ("dev", "staging", "prod", "test", "local", "qa")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "GPL-3.0", "MPL-2.0")

# extension -> (language, gist mime type)
LANGUAGES: dict[str, tuple[str, str]] = {
    ".py": ("Python", "application/x-python"),
    ".js": ("JavaScript", "application/javascript"),
    ".ts": ("TypeScript", "application/typescript"),
    ".go": ("Go", "text/x-go"),
    ".yaml": ("YAML", "application/x-yaml"),
    ".yml": ("YAML", "application/x-yaml"),
    ".md": ("Markdown", "text/markdown"),
    ".sh": ("Shell", "application/x-sh"),
    ".json": ("JSON", "application/json"),
    ".env": ("Dotenv", "text/plain"),
    ".txt": ("Text", "text/plain"),
    ".toml": ("TOML", "application/toml"),
}

_SLOT = re.compile(r"<%(\w+)%>")


def lang_of(path: str) -> str:
    """The filler family for a path: py, js, go, yaml, md, sh, json, env, toml."""
    name = path.rsplit("/", 1)[-1]
    if name.startswith(".env") or name.endswith(".env"):
        return "env"
    ext = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return {
        ".py": "py",
        ".js": "js",
        ".ts": "js",
        ".go": "go",
        ".yaml": "yaml",
        ".yml": "yaml",
        ".md": "md",
        ".sh": "sh",
        ".json": "json",
        ".toml": "toml",
    }.get(ext, "md")


def language_and_type(filename: str) -> tuple[str | None, str]:
    if filename.startswith(".env") or filename.endswith(".env"):
        return LANGUAGES[".env"]
    ext = "." + filename.rsplit(".", 1)[-1] if "." in filename else ""
    lang, mime = LANGUAGES.get(ext, (None, "text/plain"))
    return lang, mime


class Words:
    """Random identifiers and names from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pools: dict[str, list[list[str]]] = {}
        self.table: dict[str, Callable[[], str]] = {
            "noun": self.noun,
            "Noun": lambda: self.noun().capitalize(),
            "verb": self.verb,
            "snake": self.snake,
            "camel": self.camel,
            "Pascal": self.pascal,
            "CONST": self.const,
            "num": lambda: str(rng.choice((3, 5, 10, 30, 60, 100, 250, 1000))),
            "port": lambda: str(rng.choice((3000, 5432, 6379, 8000, 8080, 9090))),
            "env": lambda: rng.choice(ENVS),
            "pymod": lambda: rng.choice(PY_MODULES),
            "pylib": lambda: rng.choice(PY_THIRD),
            "jsmod": lambda: rng.choice(JS_MODULES),
            "gomod": lambda: rng.choice(GO_MODULES),
            "sentence": self.sentence,
            "version": lambda: f"{rng.randrange(0, 4)}.{rng.randrange(0, 20)}.{rng.randrange(9)}",
            "word": lambda: rng.choice((*NOUNS, *VERBS)),
            "host": lambda: f"{self.noun()}.{rng.choice(ENVS)}.example.internal",
        }

    def noun(self) -> str:
        return self.rng.choice(NOUNS)

    def verb(self) -> str:
        return self.rng.choice(VERBS)

    def adj(self) -> str:
        return self.rng.choice(ADJECTIVES)

    def snake(self) -> str:
        return f"{self.verb()}_{self.noun()}"

    def camel(self) -> str:
        return self.verb() + self.noun().capitalize()

    def pascal(self) -> str:
        return self.adj().capitalize() + self.noun().capitalize()

    def const(self) -> str:
        return f"{self.noun()}_{self.rng.choice(('TIMEOUT', 'LIMIT', 'RETRIES', 'SIZE'))}".upper()

    def person(self) -> tuple[str, str]:
        first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
        return f"{first} {last}", f"{first.lower()}.{last.lower()}@example.com"

    def login(self) -> str:
        first = self.rng.choice(FIRST_NAMES).lower()
        style = self.rng.randrange(4)
        if style == 0:
            return f"{first}{self.rng.randrange(10, 9999)}"
        if style == 1:
            return f"{first}-{self.rng.choice(LAST_NAMES).lower()}"
        if style == 2:
            return f"{self.adj()}-{self.noun()}-labs"
        return f"{first}{self.rng.choice(LAST_NAMES).lower()[:3]}"

    def repo_name(self) -> str:
        style = self.rng.randrange(3)
        if style == 0:
            return f"{self.adj()}-{self.noun()}"
        if style == 1:
            return f"{self.noun()}-{self.rng.choice(('service', 'api', 'cli', 'bot', 'sdk'))}"
        return f"{self.noun()}{self.rng.choice(('kit', 'ly', 'hub', 'flow', 'ops'))}"

    def sentence(self) -> str:
        return (
            f"{self.verb().capitalize()} the {self.adj()} {self.noun()} before the "
            f"{self.noun()} {self.rng.choice(('is saved', 'expires', 'is sent', 'runs'))}."
        )

    def filled(self, template: str) -> list[str]:
        """``fill`` split into lines; reuses one of up to 48 earlier fillings of the
        same template most of the time (generation is several times faster, and
        real code repeats itself too)."""
        pool = self.pools.setdefault(template, [])
        if len(pool) < 48 or self.rng.random() < 0.1:
            lines = self.fill(template).splitlines()
            if len(pool) < 48:
                pool.append(lines)
            return lines
        return self.rng.choice(pool)

    def fill(self, template: str) -> str:
        """Replace ``<%slot%>`` markers (names below) with fresh random words."""
        return _SLOT.sub(lambda m: self._slot(m.group(1)), template)

    def _slot(self, name: str) -> str:
        return self.table[name]()


PY_BLOCKS = (
    """def <%snake%>(<%noun%>_id: int, *, timeout: float = <%num%>) -> dict:
    \"\"\"<%sentence%>\"\"\"
    <%noun%> = repository.get(<%noun%>_id)
    if <%noun%> is None:
        raise LookupError(f"no <%noun%> {<%noun%>_id}")
    logger.debug("loaded %s in %.2fs", <%noun%>_id, timeout)
    return <%noun%>.to_dict()
""",
    """class <%Pascal%>Service:
    \"\"\"<%sentence%>\"\"\"

    def __init__(self, client, retries: int = <%num%>) -> None:
        self.client = client
        self.retries = retries

    def <%snake%>(self, items: list[str]) -> list[str]:
        return [item.strip().lower() for item in items if item]
""",
    """@app.route("/<%noun%>s/<int:item_id>", methods=["GET"])
def <%snake%>_view(item_id):
    item = <%Pascal%>.query.get_or_404(item_id)
    return jsonify(item.serialize()), 200
""",
    """<%CONST%> = <%num%>
DEFAULT_<%CONST%> = <%num%>
""",
    """for attempt in range(<%num%>):
    try:
        response = session.get(f"{BASE_URL}/<%noun%>s", timeout=<%num%>)
        response.raise_for_status()
        break
    except ConnectionError:
        time.sleep(2 ** attempt)
""",
    """@dataclass
class <%Pascal%>:
    name: str
    <%noun%>_count: int = 0
    tags: list[str] = field(default_factory=list)
""",
)
PY_HEADER = """import <%pymod%>
import <%pymod%>
from <%pylib%> import <%Pascal%>

logger = logging.getLogger(__name__)
BASE_URL = "https://<%host%>/v1"
"""

JS_BLOCKS = (
    """export async function <%camel%>(id) {
  const res = await fetch(`${BASE_URL}/<%noun%>s/${id}`);
  if (!res.ok) {
    throw new Error(`<%noun%> request failed: ${res.status}`);
  }
  return res.json();
}
""",
    """const <%camel%> = (items) =>
  items
    .filter((item) => item.<%noun%>Id != null)
    .map((item) => ({ ...item, updatedAt: Date.now() }));
""",
    """router.get('/<%noun%>s/:id', async (req, res) => {
  const <%noun%> = await db.<%noun%>.findUnique({ where: { id: req.params.id } });
  if (!<%noun%>) return res.status(404).json({ error: 'not found' });
  res.json(<%noun%>);
});
""",
    """export class <%Pascal%>Store {
  constructor(limit = <%num%>) {
    this.limit = limit;
    this.items = new Map();
  }

  <%camel%>(key, value) {
    if (this.items.size >= this.limit) this.items.clear();
    this.items.set(key, value);
  }
}
""",
    """const <%CONST%> = <%num%>;
""",
)
JS_HEADER = """import <%Pascal%> from '<%jsmod%>';
import { <%camel%> } from './<%noun%>.js';

const BASE_URL = process.env.<%CONST%>_URL || 'http://localhost:<%port%>';
"""

GO_BLOCKS = (
    """func <%Pascal%>(ctx context.Context, id string) (*<%Pascal%>Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/<%noun%>s/"+id, nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out <%Pascal%>Result
	return &out, json.NewDecoder(resp.Body).Decode(&out)
}
""",
    """type <%Pascal%> struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}
""",
    """const <%Pascal%>Timeout = <%num%> * time.Second
""",
)
GO_HEADER = """package <%noun%>

import (
	"<%gomod%>"
	"<%gomod%>"
)
"""

YAML_BLOCKS = (
    """  <%noun%>:
    image: ghcr.io/<%noun%>/<%noun%>:<%version%>
    ports:
      - "<%port%>:<%port%>"
    environment:
      LOG_LEVEL: info
      <%CONST%>: "<%num%>"
""",
    """- name: <%verb%> <%noun%>
  run: make <%verb%>
  env:
    TARGET: <%env%>
""",
    """<%noun%>:
  enabled: true
  replicas: <%num%>
  host: <%host%>
  port: <%port%>
""",
)
YAML_HEADER = """# <%sentence%>
version: "3.9"
services:
"""

MD_BLOCKS = (
    """## <%Noun%>

<%sentence%> <%sentence%>
See `docs/<%noun%>.md` for the <%word%> details.
""",
    """### Usage

```sh
make <%verb%>
./scripts/<%verb%>.sh --env <%env%>
```
""",
    """- [x] <%verb%> <%noun%>
- [ ] <%verb%> <%noun%>
- [ ] <%verb%> the <%noun%> <%noun%>
""",
)
MD_HEADER = """# <%Pascal%>

<%sentence%>
"""

SH_BLOCKS = (
    """<%verb%>_<%noun%>() {
  local target="$1"
  echo "<%verb%> ${target}"
  curl -fsS "https://<%host%>/<%noun%>s/${target}" -o "/tmp/${target}.json"
}
""",
    """if [ -z "${<%CONST%>:-}" ]; then
  echo "<%CONST%> is not set" >&2
  exit 1
fi
""",
    """for f in ./<%noun%>/*.json; do
  jq '.items | length' "$f"
done
""",
)
SH_HEADER = """#!/usr/bin/env bash
set -euo pipefail
"""

ENV_BLOCKS = (
    """<%CONST%>=<%num%>
""",
    """APP_ENV=<%env%>
DATABASE_HOST=<%host%>
DATABASE_PORT=<%port%>
""",
    """LOG_LEVEL=debug
FEATURE_<%CONST%>=true
""",
)
ENV_HEADER = """# <%sentence%>
"""

JSON_BLOCKS = (
    """    "<%noun%>": "^<%version%>",
""",
    """    "<%verb%>": "node scripts/<%verb%>.js",
""",
)
JSON_HEADER = """{
  "name": "<%noun%>-<%noun%>",
  "version": "<%version%>",
  "private": true,
  "dependencies": {
"""
JSON_FOOTER = """    "<%noun%>": "^<%version%>"
  }
}
"""

TOML_BLOCKS = (
    """[<%noun%>]
enabled = true
limit = <%num%>
""",
    """[tool.<%noun%>]
name = "<%noun%>"
""",
)
TOML_HEADER = """# <%sentence%>
"""

FAMILIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "py": (PY_HEADER, PY_BLOCKS),
    "js": (JS_HEADER, JS_BLOCKS),
    "go": (GO_HEADER, GO_BLOCKS),
    "yaml": (YAML_HEADER, YAML_BLOCKS),
    "md": (MD_HEADER, MD_BLOCKS),
    "sh": (SH_HEADER, SH_BLOCKS),
    "env": (ENV_HEADER, ENV_BLOCKS),
    "json": (JSON_HEADER, JSON_BLOCKS),
    "toml": (TOML_HEADER, TOML_BLOCKS),
}


def code_lines(words: Words, family: str, n_lines: int, header: bool = True) -> list[str]:
    """About ``n_lines`` lines of plausible code/config/prose of one family."""
    head, blocks = FAMILIES[family]
    out: list[str] = []
    if header:
        out.extend(words.filled(head))
    blank = family not in ("json", "env", "toml")
    while len(out) < n_lines:
        out.extend(words.filled(words.rng.choice(blocks)))
        if blank:
            out.append("")
    if family == "json" and header:
        out.extend(words.filled(JSON_FOOTER))
    return out


# How a planted key sits in a line of each family: {k} is the key (or near miss).
KEY_LINES: dict[str, tuple[str, ...]] = {
    "py": (
        'MG_API_KEY = "{k}"',
        '    client = mg.Client(api_key="{k}")',
        'os.environ.setdefault("MG_API_KEY", "{k}")',
    ),
    "js": ("const apiKey = '{k}';", '  apiKey: "{k}",', "process.env.MG_API_KEY ??= '{k}';"),
    "go": ('const apiKey = "{k}"', '\tclient := mg.NewClient("{k}")'),
    "yaml": ("      MG_API_KEY: {k}", '  api_key: "{k}"'),
    "md": (
        "    curl -H 'Authorization: Bearer {k}' https://api.example.com/v1/messages",
        "Use `{k}` as the key while testing.",
    ),
    "sh": ("export MG_API_KEY={k}", 'curl -H "Authorization: Bearer {k}" "$API/v1/send"'),
    "env": ("MG_API_KEY={k}", "MG_KEY={k}"),
    "json": ('    "apiKey": "{k}",',),
    "toml": ('api_key = "{k}"',),
}

# How a bare third-party example sits in a line (only for examples with no
# assignment of their own).
THIRD_PARTY_LINES: dict[str, tuple[str, ...]] = {
    "py": ('TOKEN = "{k}"', '    headers = {"Authorization": "Bearer {k}"}'),
    "js": ("const token = '{k}';",),
    "go": ('var token = "{k}"',),
    "yaml": ('  token: "{k}"',),
    "md": ("token: `{k}`",),
    "sh": ('export TOKEN="{k}"',),
    "env": ("TOKEN={k}",),
    "json": ('    "token": "{k}",',),
    "toml": ('token = "{k}"',),
}


def paths_for(words: Words) -> str:
    """A plausible repository path."""
    rng = words.rng
    n, v = words.noun(), words.verb()
    return rng.choice(
        (
            f"src/{n}/{v}_{words.noun()}.py",
            f"{n}/{words.snake()}.py",
            f"app/{n}s.py",
            f"lib/{n}/{words.camel()}.js",
            f"src/components/{words.pascal()}.ts",
            f"internal/{n}/{v}.go",
            f"cmd/{n}/main.go",
            f"config/{rng.choice(ENVS)}.yaml",
            f"deploy/{n}/values.yml",
            f"docs/{n}.md",
            f"scripts/{v}_{n}.sh",
            f".env.{rng.choice(ENVS)}",
            f"{n}/package.json",
            f"config/{n}.toml",
            "README.md",
            ".github/workflows/ci.yml",
        )
    )


def gist_filename(words: Words) -> str:
    rng = words.rng
    return rng.choice(
        (
            f"{words.snake()}.py",
            f"{words.camel()}.js",
            f"{words.noun()}.md",
            "notes.md",
            "docker-compose.yml",
            f"{words.verb()}.sh",
            ".env",
            f"{words.noun()}.json",
            f"{words.noun()}.go",
            "config.yaml",
        )
    )
