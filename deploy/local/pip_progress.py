"""Run a pip command with its whole output in a log file and progress on the screen.

    python deploy/local/pip_progress.py LOG -- python -m pip install -e '.[test]'

On a terminal one line is redrawn in place (``install: [23] collecting celery``);
elsewhere a line is printed for each package pip starts on. When pip fails, the
last lines of the log are shown with the log's path. Standard library only: it
runs before anything is installed.
"""

from __future__ import annotations

import re
import subprocess
import sys

STEP = re.compile(
    r"^(Collecting|Downloading|Building wheel for|Installing collected packages)\s*(\S*)"
)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: pip_progress.py LOG -- COMMAND...", file=sys.stderr)
        return 2
    log_path, command = argv[0], argv[2:]
    tty = sys.stdout.isatty()
    count = 0
    last = ""
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n")
        proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            m = STEP.match(line)
            if not m:
                continue
            what, name = m.group(1), m.group(2).rstrip(",")
            if what == "Collecting":
                count += 1
                last = f"install: [{count}] collecting {name}"
            elif what == "Downloading":
                continue
            elif what == "Installing collected packages":
                last = f"install: installing {count} packages"
            else:
                last = f"install: building {name}"
            if tty:
                sys.stdout.write(f"\r\x1b[K{last[:100]}")
                sys.stdout.flush()
            else:
                print(last, flush=True)
        code = proc.wait()
    if tty:
        sys.stdout.write("\r\x1b[K")
    if code != 0:
        with open(log_path, encoding="utf-8", errors="replace") as fh:
            tail = fh.read().splitlines()[-25:]
        print("\n".join(tail), file=sys.stderr)
        print(f"install: failed (exit {code}); the whole output is in {log_path}", file=sys.stderr)
        return code
    print(f"install: done ({count} packages looked at; log: {log_path})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
