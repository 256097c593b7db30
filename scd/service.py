"""The SCD as one running service: database, chain view, MQTT ingestion and certification.

Measurements are ingested in the service's process (``MeasurementIngestor``), or, with
``ingest_workers`` > 1 on PostgreSQL, in that many worker processes behind an MQTT shared
subscription (``scd.workers``); certification and the HTTP API stay in the service's process
and read what the workers stored.

    service = ScdService.from_settings(ScdSettings())
    await service.start()      # migrations ran in from_settings; MQTT and the chain follow now
    ...
    await service.stop()

``create_app(settings)`` (``scd.api``) serves its HTTP API and starts/stops it with the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine
from web3 import Web3

from flexledger.storage import is_postgres
from flexledger.transport import MqttClient, MqttUnavailableError, Topics
from node.addressbook import AddressBook
from node.contracts import FlexContracts
from node.devnet import connect
from scd.certify import Certifier
from scd.chain import ChainView
from scd.db import open_database
from scd.ingest import MeasurementIngestor
from scd.settings import ScdSettings
from scd.stats import IngestStats
from scd.workers import IngestWorkerPool

__all__ = ["ScdService"]

log = logging.getLogger(__name__)


@dataclass
class ScdService:
    """Everything the SCD runs; the HTTP API reads ``engine`` and ``chain``."""

    settings: ScdSettings
    engine: Engine
    chain: ChainView
    topics: Topics
    stats: IngestStats = field(default_factory=IngestStats)
    mqtt: MqttClient | None = None
    ingestor: MeasurementIngestor | None = None
    certifier: Certifier | None = None
    workers: IngestWorkerPool | None = None
    started: bool = False

    @classmethod
    def from_settings(
        cls,
        settings: ScdSettings,
        *,
        contracts: FlexContracts | None = None,
        from_block: int | None = None,
    ) -> ScdService:
        """Open (and migrate) the database and connect to the chain of the address book."""
        engine = open_database(settings.db_url, settings.home, settings.db_schema)
        if contracts is None:
            w3: Web3 = connect(settings.rpc_url)
            book = AddressBook.load(settings.book_path())
            contracts = FlexContracts.from_address_book(w3, book)
            from_block = book.deploy_block if from_block is None else from_block
        chain = ChainView(contracts, from_block=from_block or 0)
        return cls(
            settings=settings, engine=engine, chain=chain, topics=Topics(settings.topic_root)
        )

    def __post_init__(self) -> None:
        s = self.settings
        self.certifier = Certifier(
            self.engine,
            self.chain,
            self.topics,
            self.stats,
            poll_s=s.chain_poll_s,
            resend_interval_s=s.resend_interval_s,
            resend_max=s.resend_max,
        )
        self.ingestor = MeasurementIngestor(
            self.engine,
            self.chain,
            self.topics,
            self.stats,
            flush_max=s.flush_max,
            flush_interval_s=s.flush_interval_s,
            verify_workers=s.verify_workers,
            on_stored=self.certifier.samples_arrived,
        )

    def ingest_workers(self) -> int:
        """How many ingest processes this service will run (1: its own), and why not more."""
        s = self.settings
        n = s.ingest_workers
        if n <= 1 or not s.mqtt_url:
            return 1
        if not is_postgres(self.engine):
            log.warning(
                "FLEX_SCD_INGEST_WORKERS=%d ignored: SQLite takes one writer at a time, so "
                "the SCD ingests in its own process (use PostgreSQL for ingest workers)",
                n,
            )
            return 1
        return n

    async def start(self) -> None:
        """Subscribe (durable MQTT session), then follow the chain and ingest."""
        assert self.ingestor is not None and self.certifier is not None
        s = self.settings
        workers = self.ingest_workers()
        if s.mqtt_url:
            self.mqtt = MqttClient(s.mqtt_url, s.mqtt_client_id, clean_session=False)
            # subscribe before connecting: the broker's queued messages find their handler
            if workers == 1:
                await self.ingestor.attach(self.mqtt)
            await self.certifier.attach(self.mqtt)
            await self.mqtt.start()
            try:
                # the first connection creates the durable session: until then nothing queues
                await self.mqtt.wait_connected(s.mqtt_connect_wait_s)
            except MqttUnavailableError:
                log.warning("no MQTT broker at %s yet: retrying in the background", s.mqtt_url)
            if workers > 1:
                await self._start_workers(workers)
        await self.ingestor.start()
        await self.certifier.start()
        if self.workers is not None:
            # the chain's device events so far, in every worker before the first message: a
            # binding the workers would otherwise each ask the chain for, POD by POD
            try:
                await self.certifier.sync()
            except Exception:
                log.exception("reading the chain failed; the workers will ask it POD by POD")
        self.started = True
        log.info(
            "SCD started: MQTT %s, chain %d, window %d s, %s",
            s.mqtt_url or "off",
            self.chain.chain_id,
            self.chain.window_s,
            f"{self.workers.count} ingest worker processes"
            if self.workers
            else "ingest in-process",
        )

    async def _start_workers(self, n: int) -> None:
        assert self.mqtt is not None and self.ingestor is not None and self.certifier is not None
        s = self.settings
        mqtt = self.mqtt
        probe = None
        if mqtt.connected:
            # a durable session of an earlier one-process run still holds the plain filter
            await mqtt.unsubscribe(self.topics.all_pod_measures())

            async def probe(topic: str, payload: bytes) -> None:
                await mqtt.publish(topic, payload, qos=1)

        pool = IngestWorkerPool(
            n,
            mqtt_url=s.mqtt_url or "",
            client_id=s.mqtt_client_id,
            topic_root=self.topics.root,
            engine=self.engine,
            db_schema=s.db_schema,
            chain=self.chain,
            stats=self.stats,
            on_stored=self.certifier.samples_arrived,
            flush_max=s.flush_max,
            flush_interval_s=s.flush_interval_s,
        )
        if await pool.start(probe):
            self.workers = pool
            self.certifier.on_chain_events = pool.forward_events
        else:
            await self.ingestor.attach(mqtt)

    async def stop(self) -> None:
        """Store what was received, stop following, disconnect."""
        if not self.started:
            return
        assert self.ingestor is not None and self.certifier is not None
        self.started = False
        if self.workers is not None:
            self.certifier.on_chain_events = None
            await self.workers.stop()
            self.workers = None
        if self.mqtt is not None:
            await self.mqtt.close()
            self.mqtt = None
        await self.ingestor.stop()
        await self.certifier.stop()

    def close(self) -> None:
        self.engine.dispose()
