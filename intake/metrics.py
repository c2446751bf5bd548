"""The intake's counters, kept in a Prometheus registry (``/metrics``) and readable as JSON.

One registry per app instance (not the process-wide default), so two apps in one
test process never share counts.  With ``--workers N`` every worker counts its own
requests; Prometheus sums them across the scrape targets (or run one worker per
port behind the load balancer, as the README's deployment does).
"""
from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, generate_latest

#: name -> help; every counter the service keeps (Prometheus adds ``_total``).
COUNTERS = {
    "uploads_created": "tus uploads created",
    "uploads_completed": "uploads assembled, verified against their header and published",
    "uploads_failed": "uploads refused at completion (checksum, header or payload mismatch)",
    "verification_failures": "bundles whose payload or header did not match (a subset of uploads_failed)",
    "quota_refusals": "uploads refused by a per-case quota (open uploads or bytes in flight)",
    "disk_refusals": "requests answered 507: free-disk floor reached or the disk filled mid-write",
    "patches": "PATCH requests received",
    "patches_cut": "PATCH bodies that ended early (client gone or too slow)",
    "patch_bytes_received": "PATCH body bytes received",
    "patch_bytes_stored": "PATCH body bytes stored as parts",
    "checksum_mismatches": "chunks refused by Upload-Checksum (460)",
    "bytes_served": "bundle bytes sent to engineers",
    "notifications_sent": "verified-bundle events delivered to --notify-url",
    "notifications_failed": "verified-bundle events given up on after every retry",
}
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Stats:
    """Counters by short name; ``snapshot`` for the JSON API, ``exposition`` for Prometheus."""

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self._lock = threading.Lock()
        self._counters = {name: Counter(f"jcdiag_intake_{name}", text, registry=self.registry)
                          for name, text in COUNTERS.items()}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: int = 1) -> None:
        counter = self._counters[name]          # an unknown name is a bug: fail loudly in tests
        counter.inc(value)
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + value

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
