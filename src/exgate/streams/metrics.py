"""The streams' Prometheus families, computed at each scrape from this instance's supervisor.

* ``exgate_stream_connections{exchange}``: WebSocket connections open here;
* ``exgate_stream_state{exchange,channel,state}``: 1 for each stream kind's state, else 0
  (``standby`` where another instance owns it);
* ``exgate_stream_messages_total{exchange,channel}``, ``exgate_stream_reconnects_total``,
  ``exgate_stream_gaps_total``, ``exgate_stream_stalls_total``: what the streams this instance
  owned did since it started;
* ``exgate_stream_last_message_age_seconds{exchange,channel}``;
* ``exgate_stream_bus_dropped_total{exchange}`` (the bounded queue to the bus was full),
  ``exgate_stream_bus_unpublished_total{exchange}`` (the bus refused them),
  ``exgate_stream_bus_queue`` (events waiting).

``channel`` is the stream kind (book, trades, ticker, candle). No Redis call is made.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from exgate.streams.status import StreamState


class StreamCollector:
    """Stream families from :attr:`supervisor` (``None``: the families without samples)."""

    def __init__(self) -> None:
        self.supervisor: Any = None

    def describe(self) -> list[Metric]:
        return list(self._families().values())

    def collect(self) -> Iterator[Metric]:
        f = self._families()
        supervisor = self.supervisor
        if supervisor is not None:
            for vid, kind, status in supervisor.local_figures():
                labels = [vid, kind]
                for state in StreamState:
                    f["state"].add_metric([vid, kind, state.value], 1 if status.state is state else 0)
                f["messages"].add_metric(labels, status.messages)
                f["reconnects"].add_metric(labels, status.reconnects)
                f["gaps"].add_metric(labels, status.gaps)
                f["stalls"].add_metric(labels, status.stalls)
                if status.last_message_age_ms is not None:
                    f["age"].add_metric(labels, status.last_message_age_ms / 1000)
            for vid, sockets in supervisor.sockets().items():
                f["connections"].add_metric([vid], sockets)
            outbox = supervisor.outbox
            if outbox is not None:
                for vid in supervisor.venues:
                    f["dropped"].add_metric([vid], outbox.dropped[vid])
                    f["unpublished"].add_metric([vid], outbox.failed[vid])
                f["queued"].add_metric([], outbox.depth)
        yield from f.values()

    @staticmethod
    def _families() -> dict[str, Metric]:
        kinds = ["exchange", "channel"]
        return {
            "connections": GaugeMetricFamily("exgate_stream_connections", "WebSocket connections open to the exchange.",
                                             labels=["exchange"]),
            "state": GaugeMetricFamily("exgate_stream_state", "1 for each stream kind's current state, else 0.",
                                       labels=[*kinds, "state"]),
            "messages": CounterMetricFamily("exgate_stream_messages", "Stream updates received.", labels=kinds),
            "reconnects": CounterMetricFamily("exgate_stream_reconnects", "Stream reconnects (errors, stalls, gaps).",
                                              labels=kinds),
            "gaps": CounterMetricFamily("exgate_stream_gaps", "Order-book sequence breaks (resynced).", labels=kinds),
            "stalls": CounterMetricFamily("exgate_stream_stalls", "Streams silent past their stall time.",
                                          labels=kinds),
            "dropped": CounterMetricFamily("exgate_stream_bus_dropped", "Stream events dropped: the bus queue was full.",
                                           labels=["exchange"]),
            "unpublished": CounterMetricFamily("exgate_stream_bus_unpublished",
                                               "Stream events the bus refused (Redis down or slow).", labels=["exchange"]),
            "queued": GaugeMetricFamily("exgate_stream_bus_queue", "Stream events waiting for the bus now."),
            "age": GaugeMetricFamily("exgate_stream_last_message_age_seconds", "Seconds since the last update.",
                                     labels=kinds),
        }
