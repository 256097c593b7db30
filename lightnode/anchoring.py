"""Putting a window root on chain from the device key, exactly once, whatever happens around it.

The chain may be down (the call fails: try again later, with back-off), or the transaction may
have been mined while we did not hear about it (an agent killed after sending, a chain restarted
after mining): then ``anchor`` reverts with ``MeasurementAnchorWindowTaken``, and the window's
root on chain decides — ours: done, idempotently; another: a conflict nobody may paper over
(``AnchorConflictError``), which the agent reports loudly and never retries.

web3 is synchronous; each chain call runs in a worker thread so the agent's event loop (MQTT,
sampling) never waits for the chain.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hexbytes import HexBytes

from node.contract_errors import (
    MeasurementAnchorBatchTaken,
    MeasurementAnchorNotConcentrator,
    MeasurementAnchorNotDevice,
    MeasurementAnchorWindowTaken,
)
from node.contracts import MeasurementAnchorClient

__all__ = [
    "AnchorConflictError",
    "AnchorResult",
    "Backoff",
    "NotAuthorizedError",
    "anchor_batch_once",
    "anchor_window_once",
    "find_anchor_tx",
]

log = logging.getLogger(__name__)

_ANCHORED_TOPIC = keccak(text="MeasurementsAnchored(bytes32,uint64,bytes32,uint32,bytes32)")


class AnchorConflictError(RuntimeError):
    """The chain holds another root for this window (or batch id): never overwritten."""

    def __init__(self, message: str, chain_root: bytes | None) -> None:
        super().__init__(message)
        self.chain_root = chain_root


class NotAuthorizedError(RuntimeError):
    """The key may not anchor (device not bound to the POD, concentrator without its role):
    retrying helps only once an administrator has fixed the binding."""


@dataclass(frozen=True)
class AnchorResult:
    """A root that is on chain: the transaction that put it there, if known."""

    tx_hash: str | None
    already: bool = False


class Backoff:
    """Capped exponential back-off between attempts (``next()`` gives the next delay)."""

    def __init__(self, first_s: float = 0.2, max_s: float = 30.0) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._delay = first_s

    def next(self) -> float:
        delay = self._delay
        self._delay = min(self._delay * 2, self.max_s)
        return delay

    def reset(self) -> None:
        self._delay = self.first_s


def _hex(tx: bytes | str) -> str:
    return tx if isinstance(tx, str) else "0x" + bytes(tx).hex()


def find_anchor_tx(anchor: MeasurementAnchorClient, pod: bytes, window_start: int) -> str | None:
    """The transaction that anchored a window, from its ``MeasurementsAnchored`` event (pod and
    window start are indexed); None if the node cannot say."""
    try:
        logs = anchor.w3.eth.get_logs(
            {
                "address": anchor.address,
                "fromBlock": 0,
                "toBlock": "latest",
                "topics": [
                    HexBytes(_ANCHORED_TOPIC),
                    HexBytes(pod),
                    HexBytes(window_start.to_bytes(32, "big")),
                ],
            }
        )
    except Exception as exc:
        log.debug("could not look up the anchor transaction: %s", exc)
        return None
    return _hex(logs[-1]["transactionHash"]) if logs else None


async def anchor_window_once(
    anchor: MeasurementAnchorClient,
    device: LocalAccount,
    pod: bytes,
    window_start: int,
    root: bytes,
    sample_count: int,
    setpoints_hash: bytes,
) -> AnchorResult:
    """One attempt to anchor a window; idempotent when the same root is already there.

    Raises ``AnchorConflictError`` (another root on chain), ``NotAuthorizedError`` (the key is
    not the POD's device), or whatever the chain connection raised (retry later).
    """
    try:
        receipt = await asyncio.to_thread(
            anchor.anchor, device, pod, window_start, root, sample_count, setpoints_hash
        )
        return AnchorResult(_hex(receipt["transactionHash"]))
    except MeasurementAnchorWindowTaken:
        chain_root = await asyncio.to_thread(anchor.window_root, pod, window_start)
        if chain_root == root:
            tx = await asyncio.to_thread(find_anchor_tx, anchor, pod, window_start)
            return AnchorResult(tx, already=True)
        raise AnchorConflictError(
            f"window {window_start} is anchored with root 0x{(chain_root or b'').hex()}, "
            f"not ours 0x{root.hex()}",
            chain_root,
        ) from None
    except MeasurementAnchorNotDevice as exc:
        raise NotAuthorizedError(f"{device.address} is not the device of this POD: {exc}") from None


async def anchor_batch_once(
    anchor: MeasurementAnchorClient,
    concentrator: LocalAccount,
    batch_id: int,
    root: bytes,
    window_count: int,
    sample_count: int,
) -> AnchorResult:
    """One attempt to anchor a concentrator batch; idempotent when the same root is there.

    ``AnchorConflictError`` when the batch id already holds another root (an id used by an
    earlier life of this concentrator): the caller picks a new id.
    """
    try:
        receipt = await asyncio.to_thread(
            anchor.anchor_batch, concentrator, batch_id, root, window_count, sample_count
        )
        return AnchorResult(_hex(receipt["transactionHash"]))
    except MeasurementAnchorBatchTaken:
        chain_root = await asyncio.to_thread(anchor.batch_root, concentrator.address, batch_id)
        if chain_root == root:
            return AnchorResult(None, already=True)
        raise AnchorConflictError(f"batch {batch_id} holds another root", chain_root) from None
    except MeasurementAnchorNotConcentrator as exc:
        raise NotAuthorizedError(f"{concentrator.address} lacks CONCENTRATOR_ROLE: {exc}") from None
