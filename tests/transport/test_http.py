"""SignedHttpClient against a real FastAPI service on loopback: signatures verified by the
server, our one error shape both ways, retries only where safe."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi import FastAPI

from flexledger.transport import (
    ServiceError,
    ServiceUnreachableError,
    SignedHttpClient,
    free_port,
)
from node.eip712 import Domain
from node.keys import dev_account
from node.signing import LocalSigner
from tests.transport.helpers import DOMAIN, batch
from tests.transport.service import serve

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_signed_post_verifies_server_side(
    service_url: str, service_app: FastAPI, device: LocalSigner
) -> None:
    async with SignedHttpClient(service_url, device) as client:
        answer = await client.post_signed("/measurements", batch(n=4))
    assert answer == {"signer": device.address, "count": 4}
    assert service_app.state.received[-1].message == batch(n=4)


async def test_tampered_envelope_is_401_bad_signature(
    service_url: str, device: LocalSigner
) -> None:
    envelope = device.sign(batch())
    tampered = envelope.model_copy(update={"message": batch(n=4)})  # signature of another batch
    async with SignedHttpClient(service_url) as client:
        with pytest.raises(ServiceError) as caught:
            await client.post_envelope("/measurements", tampered)
    assert caught.value.status == 401
    assert caught.value.code == "bad_signature"
    assert "not by the claimed" in caught.value.message


async def test_a_signer_in_another_domain_is_401(service_url: str) -> None:
    other = LocalSigner(dev_account("ln:IT001E00000001"), Domain(1, DOMAIN.verifying_contract))
    async with SignedHttpClient(service_url, other) as client:
        with pytest.raises(ServiceError, match="bad_signature"):
            await client.post_signed("/measurements", batch())


async def test_malformed_body_is_422_naming_the_field(
    service_url: str, device: LocalSigner
) -> None:
    body = device.sign(batch()).model_dump(mode="json")
    body["message"]["samples"][1]["seq"] = -5
    async with SignedHttpClient(service_url) as client:
        with pytest.raises(ServiceError) as caught:
            await client.post_json("/measurements", body)
        assert caught.value.status == 422
        assert caught.value.code == "invalid"
        assert "body.message.samples.1.seq" in caught.value.message
        assert caught.value.details[0]["field"] == "body.message.samples.1.seq"

        with pytest.raises(ServiceError) as missing:
            await client.post_json("/echo", {"pods": []})
        assert missing.value.status == 422
        assert "body.window_start_s: Field required" in missing.value.message


async def test_get_errors_and_unknown_routes(service_url: str) -> None:
    async with SignedHttpClient(service_url) as client:
        assert await client.get("/windows", {"pod": "IT001E00000001", "start_s": 900}) == {
            "pod": "IT001E00000001",
            "start_s": 900,
        }
        with pytest.raises(ServiceError) as conflict:
            await client.get("/conflict")
        assert (conflict.value.status, conflict.value.code) == (409, "window_taken")
        assert conflict.value.details == {"window": 900}
        with pytest.raises(ServiceError) as missing:
            await client.get("/nowhere")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        with pytest.raises(ServiceError) as bad_query:
            await client.get("/windows", {"start_s": "x"})
        assert bad_query.value.status == 422
        assert "query.pod" in bad_query.value.message and "query.start_s" in bad_query.value.message
        with pytest.raises(ServiceError) as crash:
            await client.get("/crash")
        assert (crash.value.status, crash.value.code) == (500, "internal_error")


async def test_post_without_signer_is_refused_locally(service_url: str) -> None:
    async with SignedHttpClient(service_url) as client:
        with pytest.raises(RuntimeError, match="no signer"):
            await client.post_signed("/measurements", batch())


async def test_unreachable_service_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with SignedHttpClient(url, retries=2, backoff_s=0.01) as client:
        started = time.monotonic()
        with pytest.raises(ServiceUnreachableError, match="3 attempt"):
            await client.get("/windows")
        assert time.monotonic() - started < 2


async def test_get_retries_until_the_service_is_up(service_app: FastAPI) -> None:
    """A GET made while the service is still starting succeeds once it listens."""
    port = free_port()
    ready, done = threading.Event(), threading.Event()

    def late_start() -> None:
        time.sleep(0.3)
        with serve(service_app, port):
            ready.set()
            done.wait(5)

    thread = threading.Thread(target=late_start, daemon=True)
    thread.start()
    async with SignedHttpClient(f"http://127.0.0.1:{port}", retries=8, backoff_s=0.05) as client:
        answer = await client.get("/windows", {"pod": "IT001E00000001"})
    done.set()
    assert answer["pod"] == "IT001E00000001"
    assert ready.is_set()
    thread.join(5)
