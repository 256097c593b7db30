"""The TSO simulator: requests from the scenario's HV needs, orders of its awards (I-06, I-09).

It learns the flexible PODs from the SCD (I-02, ``GET /pods``), places each in its substation
area (the scenario's ``pods[].area``, the table the market loads as ``FLEX_AREAS_FILE``:
:func:`areas_table`), and posts one request per HV need that a session covers, located by area
and capped at the flexible power the area offers (signed with its key, ``dev:tso`` in the
embedded default). Once the session's outcome is final it orders its awards (``POST /orders``):
one order per (offer, request) and run of consecutive MTUs with the same awarded power.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from flexledger.messages import MarketOutcome, Order, Request
from flexledger.scenario import Scenario, TsoNeed
from flexledger.time import MTU_S
from flexledger.units import Direction, cents_per_mwh, kw_to_w

if TYPE_CHECKING:
    from flexledger.transport import SignedHttpClient

__all__ = ["TsoSimulator", "areas_table", "group_orders"]

log = logging.getLogger(__name__)


def areas_table(scenario: Scenario) -> dict[str, str]:
    """POD → substation area, for the market's ``FLEX_AREAS_FILE``."""
    return {p.code: p.area for p in scenario.pods}


@dataclass(frozen=True)
class _Run:
    offer_hash: str
    request_hash: str
    mtu_start_s: int
    mtu_count: int
    power_w: int


def group_orders(awards: list[Any]) -> list[_Run]:
    """Awards (one per MTU) grouped into runs of consecutive MTUs of one offer and request with
    the same power, in time order."""
    by_key: dict[tuple[str, str], list[Any]] = {}
    for a in awards:
        by_key.setdefault((a.offer_hash, a.request_hash), []).append(a)
    runs: list[_Run] = []
    for (offer, request), items in by_key.items():
        items.sort(key=lambda a: a.mtu_start_s)
        start = items[0]
        count = 1
        for prev, a in itertools.pairwise(items):
            if a.mtu_start_s == prev.mtu_start_s + MTU_S and a.power_w == start.power_w:
                count += 1
                continue
            runs.append(_Run(offer, request, start.mtu_start_s, count, start.power_w))
            start, count = a, 1
        runs.append(_Run(offer, request, start.mtu_start_s, count, start.power_w))
    return sorted(runs, key=lambda r: (r.mtu_start_s, r.offer_hash))


class TsoSimulator:
    """The TSO simulator (see the module docstring).

    Args:
        scenario: the HV needs, the areas of the PODs and the delivery day.
        market: the market's client, signing with the TSO's key.
        scd: the SCD's client (reads only).
        request_nonce / order_nonce: the first nonces it uses (scoped per kind by the market).
    """

    def __init__(
        self,
        scenario: Scenario,
        market: SignedHttpClient,
        scd: SignedHttpClient | None = None,
        *,
        request_nonce: int = 1,
        order_nonce: int = 1,
    ) -> None:
        if market.signer is None:
            raise ValueError("the market client needs the TSO's signer")
        self.scenario = scenario
        self.market = market
        self.scd = scd
        self.areas = areas_table(scenario)
        self._request_nonce = request_nonce
        self._order_nonce = order_nonce
        self.request_hashes: dict[str, list[str]] = {}  # session -> hashes of our requests
        self.ordered: set[tuple[str, str, int]] = set()  # (offer, request, first MTU) ordered

    @property
    def address(self) -> str:
        assert self.market.signer is not None
        return self.market.signer.address

    # -- learning the flexible PODs --------------------------------------------------------------

    async def learn_pods(self, page: int = 1000) -> list[dict[str, Any]]:
        """Every POD the SCD knows (I-02), each with its ``area`` added (None: not in an area of
        the TSO's)."""
        if self.scd is None:
            raise ValueError("the TSO simulator was given no SCD client")
        pods: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": page}
            if after is not None:
                params["after"] = after
            batch = await self.scd.get("/pods", params)
            if not batch:
                break
            for entry in batch:
                pods.append({**entry, "area": self.areas.get(entry["pod"])})
            if len(batch) < page:
                break
            after = batch[-1]["pod"]
        return pods

    @staticmethod
    def capacity_w(pods: list[dict[str, Any]]) -> dict[str, int]:
        """Flexible power per area, W: the sum of the learned PODs' resources' ``p_max_w``."""
        out: dict[str, int] = {}
        for p in pods:
            if p.get("area") is None:
                continue
            total = sum(int(r.get("p_max_w", 0)) for r in p.get("resources", []))
            out[p["area"]] = out.get(p["area"], 0) + total
        return out

    # -- requests ------------------------------------------------------------------------------

    def needs_for(
        self, kind: str, start_s: int | None = None, mtu_count: int | None = None
    ) -> list[tuple[TsoNeed, int, int]]:
        """The needs a session of ``kind`` covers: ``(need, first MTU start, MTU count)``,
        clipped to the session's delivery window when given."""
        out = []
        day = self.scenario.day_s
        for need in self.scenario.tso.needs:
            if need.session != kind:
                continue
            first = day + need.mtu_from * MTU_S
            last = first + need.mtu_count * MTU_S
            if start_s is not None and mtu_count is not None:
                first = max(first, start_s)
                last = min(last, start_s + mtu_count * MTU_S)
            if last > first:
                out.append((need, first, (last - first) // MTU_S))
        return out

    def requests(
        self,
        session_id: str,
        kind: str,
        *,
        start_s: int | None = None,
        mtu_count: int | None = None,
        capacity_w: dict[str, int] | None = None,
        valid_until_s: int | None = None,
    ) -> list[Request]:
        """The (unsigned) I-06 requests for one session (see :meth:`needs_for`), area-located,
        volumes capped at ``capacity_w`` per area when given (an area without flexibility gets
        no request). Nonces are taken from this simulator's counter."""
        out = []
        for need, first, count in self.needs_for(kind, start_s, mtu_count):
            volume = kw_to_w(need.volume_kw)
            if capacity_w is not None:
                volume = min(volume, capacity_w.get(need.area, 0))
            if volume <= 0:
                log.info("TSO: no flexible POD in area %s, need not requested", need.area)
                continue
            out.append(
                Request(
                    session_id=session_id,
                    requester=self.address,
                    direction=Direction.parse(need.direction),
                    mtu_start_s=first,
                    mtu_count=count,
                    volume_w=volume,
                    max_price_cents_per_mwh=cents_per_mwh(need.max_price_eur_per_mwh),
                    area=need.area,
                    valid_until_s=valid_until_s if valid_until_s is not None else first,
                    nonce=self._request_nonce,
                )
            )
            self._request_nonce += 1
        return out

    async def post_requests(
        self,
        session_id: str,
        kind: str,
        *,
        start_s: int | None = None,
        mtu_count: int | None = None,
        valid_until_s: int | None = None,
    ) -> list[Any]:
        """Learn the PODs (when an SCD client was given), then sign and post the session's
        requests; the market's receipts."""
        capacity = self.capacity_w(await self.learn_pods()) if self.scd is not None else None
        receipts = []
        for request in self.requests(
            session_id,
            kind,
            start_s=start_s,
            mtu_count=mtu_count,
            capacity_w=capacity,
            valid_until_s=valid_until_s,
        ):
            receipt = await self.market.post_signed("/requests", request)
            self.request_hashes.setdefault(session_id, []).append(receipt["hash"])
            receipts.append(receipt)
            log.info(
                "TSO request %s: %s %d W from %d for %d MTU(s) in %s",
                receipt["hash"][:10],
                request.direction,
                request.volume_w,
                request.mtu_start_s,
                request.mtu_count,
                request.area,
            )
        return receipts

    # -- orders --------------------------------------------------------------------------------

    async def my_awards(self, session_id: str) -> list[Any]:
        """The final outcome's awards that serve this TSO's requests in ``session_id``."""
        body = await self.market.get(f"/sessions/{session_id}/outcome")
        outcome = MarketOutcome.model_validate(body.get("message", body))
        mine = {h.lower() for h in self.request_hashes.get(session_id, [])}
        if not mine:
            mine = {
                r["hash"].lower()
                for r in await self.market.get("/requests", {"session": session_id})
                if _requester(r).lower() == self.address.lower()
            }
        return [a for a in outcome.awards if a.request_hash.lower() in mine]

    def orders(
        self, session_id: str, awards: list[Any], *, expiry_s: int | None = None
    ) -> list[Order]:
        """(Unsigned) I-09 orders for these awards, one per run (:func:`group_orders`) not
        ordered yet; expiry at each run's first MTU unless given."""
        out = []
        for run in group_orders(awards):
            key = (run.offer_hash, run.request_hash, run.mtu_start_s)
            if key in self.ordered:
                continue
            out.append(
                Order(
                    session_id=session_id,
                    offer_hash=run.offer_hash,
                    request_hash=run.request_hash,
                    mtu_start_s=run.mtu_start_s,
                    mtu_count=run.mtu_count,
                    power_w=run.power_w,
                    nonce=self._order_nonce,
                    expiry_s=expiry_s if expiry_s is not None else run.mtu_start_s,
                )
            )
            self._order_nonce += 1
        return out

    async def order_awards(
        self,
        session_id: str,
        *,
        from_s: int | None = None,
        to_s: int | None = None,
        expiry_s: int | None = None,
    ) -> list[Any]:
        """Order this TSO's awards of ``session_id`` whose MTUs start in ``[from_s, to_s)``
        (default: all); the market's receipts."""
        lo = from_s if from_s is not None else 0
        hi = to_s if to_s is not None else 2**63
        awards = [a for a in await self.my_awards(session_id) if lo <= a.mtu_start_s < hi]
        receipts = []
        for order in self.orders(session_id, awards, expiry_s=expiry_s):
            receipt = await self.market.post_signed("/orders", order)
            self.ordered.add((order.offer_hash, order.request_hash, order.mtu_start_s))
            receipts.append(receipt)
            log.info(
                "TSO order %s: %d W for %d MTU(s) from %d",
                receipt["hash"][:10],
                order.power_w,
                order.mtu_count,
                order.mtu_start_s,
            )
        return receipts


def _requester(public: dict[str, Any]) -> str:
    envelope = public.get("envelope") or public.get("request") or public
    message = envelope.get("message", envelope) if isinstance(envelope, dict) else {}
    return str(message.get("requester", ""))
