"""Faust's aiokafka transport with a short fetch wait, reading committed data only.

Faust builds its consumer with ``fetch_max_wait_ms=1500``. aiokafka leaves the
partitions that still have buffered records out of the next fetch, so a record
arriving on one of them can wait for the in-flight fetch of the others: up to
1.5 s before an intent is even seen. Applications wait for every decision, so
the worker asks the broker to answer within ``FETCH_MAX_WAIT_MS`` instead.
"""

from __future__ import annotations

from typing import Any, Final

from faust.transport.drivers import aiokafka as faust_aiokafka

FETCH_MAX_WAIT_MS: Final = 50


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read by consumer.start()
        # Records of an aborted transaction were never written: they must change
        # nothing (Faust reads uncommitted data unless it runs exactly-once).
        consumer._isolation_level = "read_committed"
        return consumer


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> _ConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class LowLatencyTransport(faust_aiokafka.Transport):
    Consumer = _Consumer
