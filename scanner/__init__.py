"""keysweep: find leaked API keys and make them harmless.

The package is the pure library (rules, engine, sources, findings, reports) plus
the command-line front end. It never imports the Celery layer in ``workers``.
"""

__version__ = "0.2.0"
# The commit that released this version: what the pre-commit snippet pins (a commit
# travels with every clone of the history; a tag might not).
RELEASE_COMMIT = "d9710d017afa5180f782fc3a2d9d0e349e4c25cb"
