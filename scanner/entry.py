"""The ``keysweep`` console script: the hook's fast path first, then the full CLI.

Kept apart from ``scanner.cli`` so that a clean ``keysweep hook pre-commit``
imports only ``scanner.hook_cache`` (and hyperscan) before it exits.
"""

from __future__ import annotations

import sys


def main() -> int:
    words = sys.argv[1:]
    if words[:2] == ["hook", "pre-commit"]:
        from scanner.hook_cache import fast_pre_commit

        fast = fast_pre_commit(words)
        if fast is not None:
            return fast
    from scanner.cli import main as cli_main

    return cli_main(words)
