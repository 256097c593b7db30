"""Services brought back from the state the embedded default left (floor 4).

After ``flexledger demo`` exits, the read commands (``flexledger audit …``) still need the SCD's
and the market's APIs. ``served_from_state`` hands back the URL given when something answers
there, else serves that service from its SQLite file under ``FLEX_HOME`` (read-only use: no
MQTT, no scheduler) on a free loopback port in a thread, over the chain that ``open_chain``
restarted from its state file.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["StateUrls", "served_from_state"]

log = logging.getLogger(__name__)


@dataclass
class StateUrls:
    scd: str | None = None
    market: str | None = None


def _answers(url: str) -> bool:
    try:
        httpx.get(url.rstrip("/") + "/openapi.json", timeout=1.0)
        return True
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def _thread_server(app: Any, name: str) -> Iterator[str]:
    import uvicorn

    from flexledger.transport.brokers import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"{name} did not start from its state")
        time.sleep(0.02)
    log.info("%s served from its state on port %d", name, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@contextlib.contextmanager
def served_from_state(
    chain: Any, home: Path, *, scd: str | None = None, market: str | None = None
) -> Iterator[StateUrls]:
    """``scd`` / ``market``: the URLs asked for (``None``: not needed). Each is kept when it
    answers, else replaced by that service served from ``home``'s SQLite file when there is
    one (else kept, and the command will say it cannot reach it)."""
    out = StateUrls(scd, market)
    with contextlib.ExitStack() as stack:
        contracts = None
        if scd and not _answers(scd) and (home / "scd").is_dir():
            from node.addressbook import AddressBook
            from scd import ScdService, ScdSettings, create_app

            contracts = contracts or chain.contracts()
            book = AddressBook.load(chain.book_path)
            service = ScdService.from_settings(
                ScdSettings(home=home / "scd", mqtt_url=None),
                contracts=contracts,
                from_block=book.deploy_block,
            )
            stack.callback(service.close)
            out.scd = stack.enter_context(_thread_server(create_app(service=service), "scd"))
        if market and not _answers(market) and (home / "market").is_dir():
            from market.app import create_app as create_market_app
            from market.service.scd import HttpScdReader
            from market.settings import MarketSettings

            contracts = contracts or chain.contracts()
            reader = HttpScdReader(out.scd) if out.scd else None
            if reader is not None:
                stack.callback(reader.close)
            app = create_market_app(
                MarketSettings(home=home / "market", market_operator_key="dev:market"),
                contracts=contracts,
                scheduler=False,
                scd=reader,
            )
            out.market = stack.enter_context(_thread_server(app, "market"))
        yield out
