"""keysweep: find leaked API keys and make them harmless.

The package is the pure library (rules, engine, sources, findings, reports) plus
the command-line front end. It never imports the Celery layer in ``workers``.
"""

__version__ = "0.2.0"
