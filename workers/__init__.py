"""keysweep's background deployment: Celery workers that watch GitHub's public
pushes and gists, scan them with the ``scanner`` library, and revoke, audit and
alert through it. Thin: the work itself lives in ``scanner``."""
