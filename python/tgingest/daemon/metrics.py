"""Prometheus metrics of `tgingest run` and `tgingest worker` (`--metrics-port`).

One registry per process (not prometheus-client's global one), so tests can run several
daemons in one interpreter. Labels are low-cardinality: source, stage, account, reason; chat
ids appear only on the flood-wait gauge, which holds at most one series per waiting chat.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter(
            "tgingest_messages_ingested", "Messages committed", ["source"], registry=r
        )
        self.batches = Counter(
            "tgingest_batches", "Batches committed or failed", ["status"], registry=r
        )
        self.stage = Histogram(
            "tgingest_stage_seconds",
            "Seconds per batch in each stage (prepare, commit, fetch)",
            ["stage"],
            buckets=_LATENCY,
            registry=r,
        )
        self.event_to_commit = Histogram(
            "tgingest_event_to_commit_seconds",
            "Seconds from a live event reaching tgingest to its batch's COMMIT (oldest event)",
            buckets=_LATENCY,
            registry=r,
        )
        self.queue_depth = Gauge(
            "tgingest_queue_depth", "Batches waiting to be committed", registry=r
        )
        self.consumer_lag = Gauge(
            "tgingest_consumer_lag", "Stream entries not yet delivered to workers", registry=r
        )
        self.flood_waits = Counter(
            "tgingest_flood_waits", "FloodWait errors met", ["account"], registry=r
        )
        self.flood_wait_remaining = Gauge(
            "tgingest_flood_wait_remaining_seconds",
            "Seconds left of an ongoing flood wait",
            ["account", "chat", "request"],
            registry=r,
        )
        self.gaps = Counter(
            "tgingest_update_gaps", "Update gaps that triggered a reconcile", ["reason"], registry=r
        )
        self.dead_letters = Gauge(
            "tgingest_dead_letters", "Entries in the dead-letter store", registry=r
        )
        self.pending_media = Gauge(
            "tgingest_pending_media",
            "Media files stored as pending, not yet downloaded",
            registry=r,
        )
        self.media = Counter("tgingest_media_downloads", "Media downloads", ["result"], registry=r)
        # Refreshed by the daemon's periodic quality pass (tgingest.quality.checks.CHEAP).
        self.quality_findings = Gauge(
            "tgingest_quality_findings",
            "Things found by the periodic quality checks (tgingest quality check)",
            ["check", "severity"],
            registry=r,
        )
        self.refetch_pending = Gauge(
            "tgingest_refetch_requests",
            "Id ranges quality repair asked the daemon to read again, not yet read",
            registry=r,
        )
        self.quality_checked = Gauge(
            "tgingest_quality_checked_timestamp_seconds",
            "When the periodic quality checks last completed (Unix time)",
            registry=r,
        )

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Expose /metrics on `addr:port` (loopback by default)."""
        start_http_server(port, addr=addr, registry=self.registry)
