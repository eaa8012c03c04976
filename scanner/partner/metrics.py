"""``keysweep serve``'s own Prometheus metrics (one registry per app).

Labels are endpoint names, status codes, GitHub's documented ``source`` values,
labels and reasons: never a token, a hash, a URL or a client address.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "keysweep_partner_requests", "Requests answered", ["endpoint", "status"], registry=r
        )
        self.seconds = Histogram(
            "keysweep_partner_request_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.tokens = Counter(
            "keysweep_partner_tokens", "Tokens reported to us", ["provider", "source"], registry=r
        )
        self.findings = Counter(
            "keysweep_partner_findings", "Findings queued for the act path", ["rule"], registry=r
        )
        self.labels = Counter(
            "keysweep_partner_labels",
            "Feedback labels answered (undecided: the key service did not answer in time)",
            ["label"],
            registry=r,
        )
        self.refused = Counter(
            "keysweep_partner_refused",
            "Requests refused before reading (signature, auth, size, rate)",
            ["reason"],
            registry=r,
        )
        self.key_fetches = Counter(
            "keysweep_partner_key_fetches",
            "Fetches of GitHub's public keys",
            ["result"],
            registry=r,
        )
        self.submit_failures = Counter(
            "keysweep_partner_submit_failures", "Batches that could not be queued", registry=r
        )
        self.lookup_seconds = Histogram(
            "keysweep_partner_lookup_seconds",
            "Key-service lookups for feedback labels",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
            registry=r,
        )
