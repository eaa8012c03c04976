"""The one base class of every error keysweep reports as ``keysweep: error: ...``."""


class KeysweepError(Exception):
    """A problem with the input, the configuration or the environment (exit 2)."""
