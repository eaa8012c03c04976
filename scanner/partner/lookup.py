"""Which reported hashes does the key service know? Asked within a time budget.

The answer only labels GitHub's feedback; revocation never waits for it (the
findings are already queued). So this is one attempt with a deadline and no
retries: what is not answered in time is left undecided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import httpx

from scanner import __version__

BATCH = 1000


class KeyServiceLookup:
    def __init__(
        self, url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"keysweep/{__version__}"},
            timeout=httpx.Timeout(10.0, connect=2.0),
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=20),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _batch(self, hashes: list[str]) -> dict[str, bool]:
        r = await self._http.post("/v1/keys/lookup", json={"hashes": hashes})
        r.raise_for_status()
        known = {m["sha256"] for m in r.json()["matches"] if isinstance(m, dict)}
        return {h: h in known for h in hashes}

    async def __call__(self, hashes: Iterable[str], budget: float) -> dict[str, bool]:
        """``hash -> known`` for what was answered within ``budget`` seconds."""
        unique = sorted(set(hashes))
        chunks = [unique[i : i + BATCH] for i in range(0, len(unique), BATCH)]
        tasks = [asyncio.ensure_future(self._batch(c)) for c in chunks]
        if not tasks:
            return {}
        done, pending = await asyncio.wait(tasks, timeout=budget)
        for t in pending:
            t.cancel()
        out: dict[str, bool] = {}
        for t in done:
            if t.exception() is None:
                out.update(t.result())
        return out
