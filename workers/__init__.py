"""keysweep's background deployment: Celery workers that watch GitHub's public
pushes and gists, scan them with the ``scanner`` library, and revoke, audit and
alert through it. Thin: the work itself lives in ``scanner``."""

import os as _os

# prometheus_client's multiprocess mode needs its directory before the first metric
# is made; `worker` starts it fresh, every other command just needs it to exist.
if _os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _os.makedirs(_os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
