"""Client-stream figures for ``/metrics``, computed at each scrape from the :class:`~exgate.bus.Hub`:
``exgate_stream_subscribers{stream}`` (clients fed now), ``exgate_stream_events_total{stream}``
(events this instance's feeds read), ``exgate_stream_slow_consumers_total`` (clients cut off)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric


class StreamCollector:
    """A prometheus collector over :attr:`hub` (``None``: no samples)."""

    def __init__(self) -> None:
        self.hub: Any = None

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        subscribers, events, slow = self._families()
        hub = self.hub
        if hub is not None:
            for key, feed in list(hub.feeds.items()):
                name = key.removeprefix("exgate:ev:")
                subscribers.add_metric([name], len(feed.sinks))
                events.add_metric([name], hub.events_read.get(key, 0))
            slow.add_metric([], hub.slow_consumers)
        yield from (subscribers, events, slow)

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, CounterMetricFamily, CounterMetricFamily]:
        return (GaugeMetricFamily("exgate_stream_subscribers", "Client-stream clients fed by each bus stream now.",
                                  labels=["stream"]),
                CounterMetricFamily("exgate_stream_events", "Bus events read by this instance's feeds.",
                                    labels=["stream"]),
                CounterMetricFamily("exgate_stream_slow_consumers", "Client-stream clients cut off as slow consumers."))
