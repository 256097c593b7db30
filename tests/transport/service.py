"""A tiny FastAPI service for the HTTP client tests, served by uvicorn on a free port.

No ``from __future__ import annotations`` here: FastAPI reads the handler annotations at run
time.
"""

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from flexledger.messages import MeasurementBatch, Signed
from flexledger.transport import free_port
from flexledger.transport.api import ApiError, install_error_handlers, verify_signed
from tests.transport.helpers import DOMAIN


class Echo(BaseModel):
    window_start_s: int
    pods: list[str]


def create_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    received: list[Signed[MeasurementBatch]] = []
    app.state.received = received

    @app.post("/measurements")
    def post_measurements(envelope: Signed[MeasurementBatch]) -> dict[str, Any]:
        signer = verify_signed(envelope, DOMAIN)
        received.append(envelope)
        return {"signer": signer, "count": len(envelope.message.samples)}

    @app.post("/echo")
    def echo(body: Echo) -> Echo:
        return body

    @app.get("/windows")
    def windows(pod: str, start_s: int = 0) -> dict[str, Any]:
        return {"pod": pod, "start_s": start_s}

    @app.get("/conflict")
    def conflict() -> None:
        raise ApiError(409, "window_taken", "window 900 is anchored already", {"window": 900})

    @app.get("/crash")
    def crash() -> None:
        raise RuntimeError("bug")

    return app


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
