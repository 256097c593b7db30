"""Read the flexledger contracts' events in block pages, and notice a chain that was reset.

    reader = EventReader(w3, [contracts.anchor, contracts.market], from_block=book.deploy_block)
    for event in reader.poll():           # everything new since the last poll
        print(event.name, event.args)

`poll` pages `eth_getLogs` over `page_size` blocks at a time up to the head (less
`confirmations`). Before reading it checks the block it read last: if the head is now below it,
or the block at that height has another hash, the chain was reset (a devnet restarted without
its state, a reorg) and `poll` raises `ChainReset` — the caller decides what to do (rebuild its
view, `restart()` the reader from the deploy block). With `on_reset="flag"` it sets
`reset_detected` and returns an empty list instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3
from web3._utils.events import get_event_data

from node.contracts import ContractClient

__all__ = ["ChainEvent", "ChainReset", "EventReader"]

log = logging.getLogger(__name__)


class ChainReset(RuntimeError):
    """The chain no longer holds the block the reader saw last."""

    def __init__(self, height: int, seen_hash: bytes, head: int, now_hash: bytes | None) -> None:
        self.height = height
        self.seen_hash = seen_hash
        self.head = head
        self.now_hash = now_hash
        now = now_hash.hex() if now_hash else "none"
        super().__init__(
            f"chain reset: block {height} was 0x{seen_hash.hex()}, is {now} (head {head})"
        )


@dataclass(frozen=True)
class ChainEvent:
    """One decoded event log."""

    name: str
    args: dict[str, Any]
    address: str
    block_number: int
    block_hash: bytes
    tx_hash: bytes
    log_index: int


class EventReader:
    """Pages the logs of some contracts, decoding every event of their ABIs.

    Args:
        w3: the connection.
        contracts: the clients whose events to read.
        from_block: first block to read (the address book's deploy block).
        page_size: blocks per `eth_getLogs` request.
        confirmations: blocks below the head left unread (0 on a devnet).
        on_reset: "raise" (ChainReset) or "flag" (sets `reset_detected`, returns nothing).
    """

    def __init__(
        self,
        w3: Web3,
        contracts: Sequence[ContractClient],
        *,
        from_block: int = 0,
        page_size: int = 2_000,
        confirmations: int = 0,
        on_reset: Literal["raise", "flag"] = "raise",
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        self.w3 = w3
        self.page_size = page_size
        self.confirmations = confirmations
        self.on_reset = on_reset
        self.from_block = from_block
        self.addresses = [to_checksum_address(c.address) for c in contracts]
        self._abis: dict[tuple[str, bytes], Any] = {}
        for client in contracts:
            for item in client.contract.abi:
                if item.get("type") == "event" and not item.get("anonymous"):
                    topic = event_abi_to_log_topic(item)  # type: ignore[arg-type]
                    key = (to_checksum_address(client.address), topic)
                    self._abis[key] = item
        self.next_block = from_block
        self._seen: tuple[int, bytes] | None = None
        self.reset_detected = False

    def restart(self, from_block: int | None = None) -> None:
        """Forget what was read; the next poll starts again at `from_block`."""
        self.next_block = self.from_block if from_block is None else from_block
        self._seen = None
        self.reset_detected = False

    @property
    def checkpoint(self) -> tuple[int, bytes] | None:
        """(height, hash) of the last block read, to persist and pass to `resume`."""
        return self._seen

    def resume(self, checkpoint: tuple[int, bytes]) -> None:
        """Continue after a checkpoint saved earlier (checked for a reset on the next poll)."""
        self._seen = checkpoint
        self.next_block = checkpoint[0] + 1

    def _block_hash(self, number: int) -> bytes | None:
        try:
            block = self.w3.eth.get_block(number)
        except Exception:  # the block does not exist (any more)
            return None
        h = block.get("hash")
        return bytes(h) if h is not None else None

    def check_reset(self) -> bool:
        """True (or ChainReset) when the last block read is no longer on the chain."""
        if self._seen is None:
            return False
        height, seen_hash = self._seen
        head = self.w3.eth.block_number
        now_hash = self._block_hash(height) if head >= height else None
        if now_hash == seen_hash:
            return False
        if self.on_reset == "raise":
            raise ChainReset(height, seen_hash, head, now_hash)
        log.warning("chain reset at block %d (head %d)", height, head)
        self.reset_detected = True
        return True

    def poll(self) -> list[ChainEvent]:
        """Events in blocks from `next_block` up to the head (less confirmations)."""
        if self.check_reset():
            return []
        head = self.w3.eth.block_number - self.confirmations
        events: list[ChainEvent] = []
        while self.next_block <= head:
            end = min(head, self.next_block + self.page_size - 1)
            events.extend(self._read(self.next_block, end))
            end_hash = self._block_hash(end)
            if end_hash is None:  # the chain shrank under us
                self.check_reset()
                return events
            self._seen = (end, end_hash)
            self.next_block = end + 1
        return events

    def _read(self, first: int, last: int) -> Iterable[ChainEvent]:
        logs = self.w3.eth.get_logs(
            {
                "fromBlock": first,
                "toBlock": last,
                "address": self.addresses,
            }
        )
        out: list[ChainEvent] = []
        for entry in logs:
            topics = entry["topics"]
            if not topics:
                continue
            abi = self._abis.get((to_checksum_address(entry["address"]), bytes(topics[0])))
            if abi is None:
                continue
            data = get_event_data(self.w3.codec, abi, entry)
            out.append(
                ChainEvent(
                    name=data["event"],
                    args={k: _plain(v) for k, v in data["args"].items()},
                    address=to_checksum_address(entry["address"]),
                    block_number=int(entry["blockNumber"]),
                    block_hash=bytes(entry["blockHash"]),
                    tx_hash=bytes(entry["transactionHash"]),
                    log_index=int(entry["logIndex"]),
                )
            )
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    return value
