"""How ``flexledger serve …`` runs one service: uvicorn in an asyncio loop that, with
``--clock-mqtt``, first follows the scenario clock over MQTT (``flexledger sim serve`` serves
it), so that the service reads the simulated time rather than the wall clock."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from typing import Annotated

import typer
from fastapi import FastAPI

from flexledger.protocols import Clock

__all__ = ["ClockMqttOpt", "serve_app"]

ClockMqttOpt = Annotated[
    bool,
    typer.Option(
        "--clock-mqtt",
        envvar="FLEX_CLOCK_MQTT",
        help="Follow the scenario clock over MQTT (flexledger sim serve) instead of the wall "
        "clock.",
    ),
]


def serve_app(
    build: Callable[[Clock | None], FastAPI],
    *,
    name: str,
    host: str,
    port: int,
    clock_mqtt: bool = False,
    mqtt_url: str | None = None,
    topic_root: str = "flex",
) -> None:
    """Serve ``build(clock)`` on ``host:port`` until SIGINT/SIGTERM; ``clock`` is the scenario
    clock followed over MQTT with ``clock_mqtt`` (then ``mqtt_url`` is needed), else None (the
    service's own default, the wall clock)."""
    import uvicorn

    from flexledger.transport import MqttClient, MqttClockClient, Topics, unique_client_id

    if clock_mqtt and not mqtt_url:
        raise typer.BadParameter("--clock-mqtt needs FLEX_MQTT_URL")

    async def main() -> None:
        async with contextlib.AsyncExitStack() as stack:
            clock: Clock | None = None
            if clock_mqtt:
                assert mqtt_url is not None
                mqtt = await stack.enter_async_context(
                    MqttClient(mqtt_url, unique_client_id(f"{name}-clock"))
                )
                follower = MqttClockClient(
                    f"{name}-clock", mqtt, topics=Topics(topic_root), timeout_s=120
                )
                # a follower, not a participant: it never holds the clock back
                await follower.start(register=False)
                stack.push_async_callback(follower.stop)
                clock = follower
            app = build(clock)
            config = uvicorn.Config(app, host=host, port=port, log_level="warning")
            await uvicorn.Server(config).serve()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
