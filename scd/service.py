"""The SCD as one running service: database, chain view, MQTT ingestion and certification.

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

    async def start(self) -> None:
        """Subscribe (durable MQTT session), then follow the chain and ingest."""
        assert self.ingestor is not None and self.certifier is not None
        s = self.settings
        if s.mqtt_url:
            self.mqtt = MqttClient(s.mqtt_url, s.mqtt_client_id, clean_session=False)
            # subscribe before connecting: the broker's queued messages find their handler
            await self.ingestor.attach(self.mqtt)
            await self.certifier.attach(self.mqtt)
            await self.mqtt.start()
            try:
                # the first connection creates the durable session: until then nothing queues
                await self.mqtt.wait_connected(s.mqtt_connect_wait_s)
            except MqttUnavailableError:
                log.warning("no MQTT broker at %s yet: retrying in the background", s.mqtt_url)
        await self.ingestor.start()
        await self.certifier.start()
        self.started = True
        log.info(
            "SCD started: MQTT %s, chain %d, window %d s",
            s.mqtt_url or "off",
            self.chain.chain_id,
            self.chain.window_s,
        )

    async def stop(self) -> None:
        """Store what was received, stop following, disconnect."""
        if not self.started:
            return
        assert self.ingestor is not None and self.certifier is not None
        self.started = False
        if self.mqtt is not None:
            await self.mqtt.close()
            self.mqtt = None
        await self.ingestor.stop()
        await self.certifier.stop()

    def close(self) -> None:
        self.engine.dispose()
