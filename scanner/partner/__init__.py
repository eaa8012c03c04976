"""Leak reports pushed to us: GitHub secret scanning partner alerts and GitLab's
Token Revocation API (``keysweep serve``), and third-party GitHub tokens reported
to GitHub's credential revocation API.

The HTTP app (``scanner.partner.app.create_app``) is a thin adapter: it verifies,
hashes, builds findings and hands them to an injected ``submit`` callable (the
Celery layer wires ``workers.submit.submit_findings``), so this package never
imports ``workers``, Celery or Redis.
"""
