"""The one base class of every error keysweep reports as ``keysweep: error: ...``."""


class KeysweepError(Exception):
    """A problem with the input, the configuration or the environment (exit 2)."""


class TransientError(KeysweepError):
    """Worth trying again later: a timeout, a 5xx, a rate limit, a service that is down.

    ``wait`` is how long the other side asked us to wait (``Retry-After``), if it said.
    """

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class PermanentError(KeysweepError):
    """Trying again changes nothing (a 404, a refused request, a malformed document):
    record it, count it and move on; it never fails its neighbours."""
