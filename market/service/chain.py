"""The market's commitments on chain (and its settlements), each one idempotent.

Why idempotent: the database and the chain are two stores, and a process can die between a
mined transaction and the row that records it. Every step here first reads what the chain
already holds (``sessionOf``, ``validationOf``, ``orderIssuer``) and sends nothing when the step
is already there, so that re-running a step after a restart completes it instead of failing.
A refused transaction becomes ``ChainFailure`` (502 ``chain_error``) naming the contract error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic
from web3.types import TxReceipt

from flexledger.messages import Order, Signed, Validation, id32
from market.service.errors import ChainFailure
from node.contracts import ContractError, FlexContracts, FlexMarketClient, Session, SessionState

__all__ = ["KIND_CODES", "MarketChain"]

log = logging.getLogger(__name__)
KIND_CODES = {"day_ahead": 0, "real_time": 1}
T = TypeVar("T")


def _tx(receipt: TxReceipt) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


def _sig(envelope: Signed[Any]) -> bytes:
    return bytes.fromhex(envelope.signature.removeprefix("0x"))


class MarketChain:
    """FlexMarket as the market operator drives it."""

    def __init__(self, contracts: FlexContracts, operator: LocalAccount) -> None:
        self.contracts = contracts
        self.operator = operator

    @property
    def market(self) -> FlexMarketClient:
        return self.contracts.market

    def _send(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except ContractError as exc:
            raise ChainFailure(f"{what} refused on chain: {type(exc).__name__} {exc}") from exc
        except Exception as exc:  # connection refused, timeout: the chain did not answer
            raise ChainFailure(f"{what}: the chain did not answer: {exc}") from exc

    def session(self, session_id: str) -> Session:
        return self._send("sessionOf", lambda: self.market.session_of(id32(session_id)))

    def open_session(
        self,
        session_id: str,
        kind: str,
        delivery_start_s: int,
        mtu_count: int,
        baseline_method: str,
        pricing: str,
    ) -> str | None:
        """``openSession``; None when the chain already has the session as asked."""
        s = self.session(session_id)
        if s.state != SessionState.NONE:
            if s.delivery_start == delivery_start_s and s.mtu_count == mtu_count:
                return None
            raise ChainFailure(f"session {session_id} exists on chain with another delivery")
        receipt = self._send(
            "openSession",
            lambda: self.market.open_session(
                self.operator,
                id32(session_id),
                KIND_CODES[kind],
                delivery_start_s,
                mtu_count,
                id32(baseline_method),
                id32(pricing),
            ),
        )
        return _tx(receipt)

    def close_gate(
        self, session_id: str, root: bytes, offer_count: int, request_count: int
    ) -> str | None:
        s = self.session(session_id)
        if s.state >= SessionState.GATE_CLOSED:
            if s.order_book_root != root:
                raise ChainFailure(
                    f"session {session_id}: the chain holds order-book root "
                    f"0x{s.order_book_root.hex()}, not 0x{root.hex()}"
                )
            return None
        receipt = self._send(
            "closeGate",
            lambda: self.market.close_gate(
                self.operator, id32(session_id), root, offer_count, request_count
            ),
        )
        return _tx(receipt)

    def record_validation(self, envelope: Signed[Validation]) -> str | None:
        v = envelope.message
        session = id32(v.session_id)
        s = self.session(v.session_id)
        if s.validation_rounds >= v.round:
            return None
        receipt = self._send(
            "recordValidation",
            lambda: self.market.record_validation(
                self.operator, v.eip712_message(), _sig(envelope)
            ),
        )
        log.info("validation round %d of %s recorded", v.round, session.hex()[:8])
        return _tx(receipt)

    def commit_outcome(
        self, session_id: str, awards_root: bytes, total_cost_cents: int, award_count: int
    ) -> str | None:
        s = self.session(session_id)
        if s.state >= SessionState.OUTCOME_COMMITTED:
            return None
        receipt = self._send(
            "commitOutcome",
            lambda: self.market.commit_outcome(
                self.operator, id32(session_id), awards_root, total_cost_cents, award_count
            ),
        )
        return _tx(receipt)

    def record_order(self, envelope: Signed[Order], order_hash: bytes) -> str | None:
        if self._send("orderIssuer", lambda: self.market.order_issuer(order_hash)) is not None:
            return None
        receipt = self._send(
            "recordOrder",
            lambda: self.market.record_order(
                self.operator, envelope.message.eip712_message(), _sig(envelope)
            ),
        )
        return _tx(receipt)

    # -- settlement ------------------------------------------------------------------------

    def settle(
        self,
        record: dict[str, Any],
        record_hash: bytes,
        payer: str,
        payee: str,
        brp: str,
        day_s: int,
        award_proof: list[bytes],
    ) -> str:
        """``Settlement.settle`` for one award; its transaction. When the chain holds this very
        record already (a re-run after a restart) nothing is sent and the transaction that
        settled it is returned; ``ChainFailure`` when the chain holds another record."""
        award_hash: bytes = record["awardHash"]
        settlement = self.contracts.settlement
        done = self._send("settlementOf", lambda: settlement.settlement_of(award_hash))
        if done is not None:
            if done.record_hash != record_hash:
                raise ChainFailure(
                    f"award 0x{award_hash.hex()} is settled on chain with another record "
                    f"(0x{done.record_hash.hex()})"
                )
            return self._settled_tx(award_hash, done.settled_block)
        receipt = self._send(
            "settle",
            lambda: settlement.settle(self.operator, record, payer, payee, brp, day_s, award_proof),
        )
        return _tx(receipt)

    def _settled_tx(self, award_hash: bytes, block: int) -> str:
        settlement = self.contracts.settlement
        topic = "0x" + event_abi_to_log_topic(settlement.contract.events.AwardSettled().abi).hex()
        logs = self._send(
            "getLogs",
            lambda: settlement.w3.eth.get_logs(
                {
                    "address": settlement.address,
                    "fromBlock": block,
                    "toBlock": block,
                    "topics": [topic, "0x" + award_hash.hex()],
                }
            ),
        )
        if not logs:
            raise ChainFailure(f"award 0x{award_hash.hex()}: no AwardSettled log in block {block}")
        return "0x" + bytes(logs[0]["transactionHash"]).hex()

    def mark_settled(self, session_id: str) -> str | None:
        """``markSettled``; None when the session is settled on chain already."""
        s = self.session(session_id)
        if s.state >= SessionState.SETTLED:
            return None
        receipt = self._send(
            "markSettled", lambda: self.market.mark_settled(self.operator, id32(session_id))
        )
        return _tx(receipt)

    def spendable_cents(self, payer: str) -> int:
        """What ``payer`` lets Settlement move now: min(allowance, balance), cents."""
        token, spender = self.contracts.token, self.contracts.settlement.address
        allowance = self._send("allowance", lambda: token.allowance(payer, spender))
        balance = self._send("balanceOf", lambda: token.balance_of(payer))
        return min(allowance, balance)
