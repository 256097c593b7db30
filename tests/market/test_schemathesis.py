"""Property-based fuzz of every route from the OpenAPI document (schemathesis): whatever the
body, path or query, the market answers in its error shape and never with a server error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings

from flexledger.time import ScenarioClock
from market.app import create_app
from market.service.announce import MemoryAnnouncer
from market.settings import MarketSettings
from node.contracts import FlexContracts
from tests.market.helpers import AREAS, START


def test_no_server_error(contracts: FlexContracts, tmp_path: Path) -> None:
    """Each operation of the OpenAPI document, fuzzed by schemathesis' strategies.

    Driven through hypothesis directly rather than schemathesis' pytest plugin, which does not
    run under pytest 9 (it reads an attribute pytest removed)."""
    app = create_app(
        MarketSettings(home=tmp_path, role_cache_s=0.0),
        contracts=contracts,
        clock=ScenarioClock(START, step_s=900),
        announcer=MemoryAnnouncer(),
        areas=AREAS,
        scheduler=False,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 18
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def fuzz(case: Any) -> None:
            response = case.call()
            assert response.status_code < 500 or response.status_code == 501, (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:500]}"
            )
            if response.status_code >= 400:
                assert set(response.json()) == {"error"}, response.text

        fuzz()
