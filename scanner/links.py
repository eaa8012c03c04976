"""Which repository a finding is in, and a link a person can open.

A local repository is named by its remote's URL (``origin``, else its only
remote), with any credentials removed, or by its absolute path when it has no
remote. A repository on GitHub, GitLab or Bitbucket gets a browsable link to the
line: ``…/blob/<commit>/<path>#L<line>`` (GitLab ``/-/blob/``, Bitbucket
``/src/…#lines-N``).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

SCP_LIKE = re.compile(r"^(?P<user>[^@/\s]+)@(?P<host>[^:/\s]+):(?P<path>[^\s]+)$")
USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]*@")


def strip_credentials(url: str) -> str:
    """A URL without a user name or password (``ssh://git@`` and ``git@host:`` keep the
    user: it is not a secret, and ssh needs it)."""
    if SCP_LIKE.match(url):
        return url
    parts = urlsplit(url)
    if not parts.netloc or "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    if parts.scheme == "ssh" and parts.username and parts.password is None:
        host = f"{parts.username}@{host}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def scrub(message: str, *urls: str) -> str:
    """A message (git's error, say) with credentials removed from every URL in it."""
    for url in urls:
        if url:
            message = message.replace(url, strip_credentials(url))
    return USERINFO.sub(lambda m: m.group(1), message)


def _web_base(repo: str) -> tuple[str, str] | None:
    """(host, https://host/owner/name) for a repository on a host we can link to."""
    m = SCP_LIKE.match(repo)
    if m:
        host, path = m["host"].lower(), m["path"]
    else:
        parts = urlsplit(repo)
        if parts.scheme not in ("https", "http", "ssh", "git") or not parts.hostname:
            return None
        host, path = parts.hostname.lower(), parts.path
    if host.startswith("www."):
        host = host[4:]
    if host not in ("github.com", "gitlab.com", "bitbucket.org"):
        return None
    path = path.strip("/").removesuffix(".git")
    if path.count("/") < 1:
        return None
    return host, f"https://{host}/{path}"


def browse_url(
    repo: str | None, commit: str | None, path: str | None, line: int | None
) -> str | None:
    """A link to the line on GitHub, GitLab or Bitbucket; None elsewhere."""
    if not (repo and commit and path):
        return None
    web = _web_base(repo)
    if web is None:
        return None
    host, base = web
    if path == "<commit message>":  # a key in a commit's message: the commit's page
        return (
            f"{base}/-/commit/{commit}"
            if host == "gitlab.com"
            else f"{base}/commits/{commit}"
            if host == "bitbucket.org"
            else f"{base}/commit/{commit}"
        )
    if "!" in path:  # a file inside an archive: the archive
        path, line = path.split("!", 1)[0], None
    quoted = quote(path, safe="/")
    if host == "gitlab.com":
        return f"{base}/-/blob/{commit}/{quoted}" + (f"#L{line}" if line else "")
    if host == "bitbucket.org":
        return f"{base}/src/{commit}/{quoted}" + (f"#lines-{line}" if line else "")
    return f"{base}/blob/{commit}/{quoted}" + (f"#L{line}" if line else "")


def repository_name(top: Path) -> str:
    """The remote's URL without credentials (``origin``, else the only remote), or the
    absolute path of the work tree (or bare repository)."""
    try:
        out = subprocess.run(
            ["git", "-C", str(top), "remote", "-v"],
            capture_output=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        out = None
    remotes: dict[str, str] = {}
    if out is not None and out.returncode == 0:
        for raw in out.stdout.decode("utf-8", "replace").splitlines():
            fields = raw.split()
            if len(fields) >= 2 and fields[0] not in remotes:
                remotes[fields[0]] = fields[1]
    url = remotes.get("origin") or (next(iter(remotes.values())) if len(remotes) == 1 else None)
    if url and "://" not in url and not re.match(r"[^/]+:", url):
        # A local path (git remote add origin ../mirror.git): as git reads it, from the
        # top of the work tree; shown absolute, as a repository without a remote is.
        return str((top / url).resolve())
    if url:
        return strip_credentials(url)
    return str(top.resolve())
