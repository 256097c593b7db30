"""Shared values and message builders of the transport tests."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from flexledger.messages import MeasurementBatch, Sample, SetPoint
from flexledger.transport import MqttClient
from flexledger.units import Direction
from node.eip712 import Domain

SHARED_MOSQUITTO = "mqtt://127.0.0.1:1883"  # the machine's broker; tests use their own roots
DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "11" * 20)
POD = "IT001E00000001"
POD2 = "IT001E00000002"
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, an MTU start

MakeClient = Callable[..., Awaitable[MqttClient]]


def batch(first_seq: int = 0, n: int = 3, pod: str = POD, t0: int = T0) -> MeasurementBatch:
    return MeasurementBatch(
        pod=pod,
        samples=[
            Sample(t_s=t0 + 4 * i, p_w=1500 - 10 * i, q_var=-200, v_mv=231_000, seq=first_seq + i)
            for i in range(n)
        ],
    )


def setpoint(pod: str = POD, power_w: int = 2000, seq: int = 1) -> SetPoint:
    return SetPoint(
        order_hash="0x" + "ab" * 32,
        pod=pod,
        direction=Direction.UP,
        mtu_start_s=T0,
        mtu_count=4,
        power_w=power_w,
        seq=seq,
        expiry_s=T0 + 3600,
    )


async def eventually(predicate: Callable[[], Any], timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (polling briefly); fail with a clear message."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.01)


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
