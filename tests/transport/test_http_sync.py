"""The blocking HTTP client (CLI, scripts) against the same service."""

from __future__ import annotations

import pytest

from flexledger.transport import (
    ServiceError,
    ServiceUnreachableError,
    SyncSignedHttpClient,
    free_port,
)
from node.signing import LocalSigner
from tests.transport.helpers import batch


def test_sync_client(service_url: str, device: LocalSigner) -> None:
    with SyncSignedHttpClient(service_url, device) as client:
        assert client.post_signed("/measurements", batch(n=2)) == {
            "signer": device.address,
            "count": 2,
        }
        with pytest.raises(ServiceError, match="window_taken"):
            client.get("/conflict")
    with (
        SyncSignedHttpClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff_s=0.01) as dead,
        pytest.raises(ServiceUnreachableError),
    ):
        dead.get("/x")
