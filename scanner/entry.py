"""The ``keysweep`` console script: the hook's fast path first, then the full CLI.

Kept apart from ``scanner.cli`` so that a clean ``keysweep hook pre-commit``
imports only ``scanner.hook_cache`` (and hyperscan) before it exits.
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        return _main(sys.argv[1:])
    except BrokenPipeError:
        # The reader went away (``keysweep status | head``): no traceback, and nothing
        # more written at exit (Python would flush stdout into the closed pipe again).
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _main(words: list[str]) -> int:
    if words[:2] == ["hook", "pre-commit"]:
        from scanner.hook_cache import fast_pre_commit

        fast = fast_pre_commit(words)
        if fast is not None:
            return fast
    if words and not words[0].startswith("-"):
        from scanner.errors import KeysweepError

        try:
            # Loading a service command reads the settings: a bad one is a clear error too.
            plugin = service_command(words[0])
            if plugin is not None:
                return int(plugin(words[1:]) or 0)
        except KeysweepError as exc:
            print(f"keysweep: error: {exc}", file=sys.stderr)
            return 2
    from scanner.cli import main as cli_main

    return cli_main(words)


CORE = {"scan", "rules", "baseline", "hook", "install-hook", "keys", "version", "completion"}


def service_command(name: str):  # type: ignore[no-untyped-def]
    """A command another package registered (``keysweep.commands``), e.g. ``worker``."""
    if name in CORE:
        return None
    from importlib.metadata import entry_points

    for ep in entry_points(group="keysweep.commands"):
        if ep.name == name:
            return ep.load()
    return None
