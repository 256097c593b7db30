"""The clearing's typed inputs: offers, requests, the book they form, and award keys.

These are plain frozen dataclasses rather than the signed protocol messages so that the
optimiser sees exactly what it clears — a hash, a POD, bounds and prices in integers — and
nothing of the transport. ``from_message`` builds them from ``flexledger.messages.Offer`` and
``Request``; an offer or request is identified by its EIP-712 struct hash (docs/PROTOCOL.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from flexledger.messages import Offer, Request
from flexledger.time import MTU_S
from flexledger.units import PPM, Direction
from market.clearing.errors import MalformedBookError

__all__ = [
    "MAX_POWER_W",
    "MAX_PRICE_CENTS_PER_MWH",
    "AwardKey",
    "ClearingBook",
    "ClearingOffer",
    "ClearingRequest",
    "Stage",
    "normalise_hash",
]

Stage = Literal["dso", "tso"]
_HASH_RE = re.compile(r"^0x[0-9a-f]{64}$")
_MAX_U64 = 2**64 - 1
#: Ceilings the clearing accepts, far above anything real (10 GW at one POD, 1 M€/MWh): they
#: keep every exact integer product (W × ppm, Wh × cents/MWh) inside int64.
MAX_POWER_W = 10**10
MAX_PRICE_CENTS_PER_MWH = 10**8


def normalise_hash(value: str | bytes) -> str:
    """A 32-byte hash as ``0x`` + 64 lower-case hex digits, the form every award carries."""
    if isinstance(value, bytes | bytearray):
        if len(value) != 32:
            raise MalformedBookError(f"a hash is 32 bytes, not {len(value)}")
        return "0x" + bytes(value).hex()
    text = value.lower()
    if not text.startswith("0x"):
        text = "0x" + text
    if not _HASH_RE.match(text):
        raise MalformedBookError(f"{value!r} is not a 32-byte hex hash")
    return text


class AwardKey(NamedTuple):
    """What identifies an award independently of its power: (offer, request, MTU start).

    Validation rounds reject awards; the session re-clears with their keys excluded, and a key
    stays valid whatever power the next round gives that offer.
    """

    offer_hash: str
    request_hash: str
    mtu_start_s: int

    @classmethod
    def of(cls, award: object) -> AwardKey:
        """The key of anything with ``offer_hash``, ``request_hash`` and ``mtu_start_s``
        (a ``flexledger.messages.Award`` or a ``ClearedAward``)."""
        return cls(
            normalise_hash(award.offer_hash),  # type: ignore[attr-defined]
            normalise_hash(award.request_hash),  # type: ignore[attr-defined]
            int(award.mtu_start_s),  # type: ignore[attr-defined]
        )


@dataclass(frozen=True, slots=True)
class ClearingOffer:
    """One offer as the clearing sees it (I-05).

    Each MTU in ``mtu_starts`` may be awarded independently. ``min_w = 0``: divisible;
    ``0 < min_w < max_w``: semi-continuous (each award 0 or in [min_w, max_w]);
    ``min_w = max_w``: all-or-nothing.
    """

    hash: str
    pod: str
    direction: Direction
    mtu_starts: tuple[int, ...]
    max_w: int
    min_w: int
    price_cents_per_mwh: int

    @property
    def semi_continuous(self) -> bool:
        return self.min_w > 0

    @property
    def all_or_nothing(self) -> bool:
        return self.min_w == self.max_w

    @classmethod
    def from_message(cls, offer: Offer, offer_hash: str | bytes | None = None) -> ClearingOffer:
        """From a protocol offer; its hash is computed (EIP-712 struct hash) when not given."""
        if offer_hash is None:
            from node.signing import message_hash  # floor 2: the hash is node's job

            offer_hash = message_hash(offer)
        return cls(
            hash=normalise_hash(offer_hash),
            pod=offer.pod,
            direction=Direction(offer.direction),
            mtu_starts=tuple(offer.mtu_starts),
            max_w=offer.max_w,
            min_w=offer.min_w,
            price_cents_per_mwh=offer.price_cents_per_mwh,
        )


@dataclass(frozen=True, slots=True)
class ClearingRequest:
    """One request as the clearing sees it (I-06).

    A request is located either by ``eligible`` (POD code → effectiveness factor in parts per
    million; a DSO request) or, when ``eligible`` is empty, by ``area`` (a substation area: an
    offer counts with factor 1 when its POD is in that area; a TSO request). ``stage`` says
    which clearing stage serves it: DSO requests first, TSO requests on what is left.
    """

    hash: str
    stage: Stage
    direction: Direction
    mtu_starts: tuple[int, ...]
    volume_w: int
    max_price_cents_per_mwh: int
    eligible: Mapping[str, int] = field(default_factory=dict, hash=False)
    area: str | None = None

    @classmethod
    def from_message(
        cls,
        request: Request,
        request_hash: str | bytes | None = None,
        stage: Stage | None = None,
    ) -> ClearingRequest:
        """From a protocol request; the stage defaults to ``dso`` for a request with eligible
        PODs and ``tso`` for one located by area only (the market knows the requester's role
        on chain and may say so explicitly)."""
        if request_hash is None:
            from node.signing import message_hash

            request_hash = message_hash(request)
        if stage is None:
            stage = "dso" if request.eligible else "tso"
        return cls(
            hash=normalise_hash(request_hash),
            stage=stage,
            direction=Direction(request.direction),
            mtu_starts=tuple(request.mtu_starts),
            volume_w=request.volume_w,
            max_price_cents_per_mwh=request.max_price_cents_per_mwh,
            eligible={e.pod: e.factor_ppm for e in request.eligible},
            area=request.area,
        )


@dataclass(frozen=True, slots=True)
class ClearingBook:
    """The order book at gate closure: offers, requests and where each POD is.

    ``pod_area`` maps a POD code to its substation area; it locates area-based (TSO) requests.
    ``check()`` refuses a book that cannot be cleared as given with ``MalformedBookError``.
    """

    session_id: str
    offers: tuple[ClearingOffer, ...]
    requests: tuple[ClearingRequest, ...]
    pod_area: Mapping[str, str] = field(default_factory=dict, hash=False)

    @classmethod
    def of(
        cls,
        session_id: str,
        offers: Iterable[ClearingOffer],
        requests: Iterable[ClearingRequest],
        pod_area: Mapping[str, str] | None = None,
    ) -> ClearingBook:
        return cls(session_id, tuple(offers), tuple(requests), dict(pod_area or {}))

    def check(self) -> None:
        """Raise ``MalformedBookError`` for anything the clearing cannot honour."""
        if not self.session_id:
            raise MalformedBookError("a book belongs to a session: session_id is empty")
        seen: set[str] = set()
        for o in self.offers:
            if o.hash in seen:
                raise MalformedBookError(f"offer {o.hash} appears twice in the book")
            seen.add(o.hash)
            if not _HASH_RE.match(o.hash):
                raise MalformedBookError(f"offer hash {o.hash!r} is not 0x + 64 lower-case hex")
            if not 0 < o.max_w <= MAX_POWER_W or not 0 <= o.min_w <= o.max_w:
                raise MalformedBookError(
                    f"offer {o.hash}: needs 0 < max_w <= {MAX_POWER_W} and 0 <= min_w <= max_w"
                    f" (max_w={o.max_w}, min_w={o.min_w})"
                )
            if not 0 <= o.price_cents_per_mwh <= MAX_PRICE_CENTS_PER_MWH:
                raise MalformedBookError(
                    f"offer {o.hash}: price {o.price_cents_per_mwh} out of range"
                )
            _check_mtus(o.hash, o.mtu_starts)
            if o.direction not in (Direction.UP, Direction.DOWN):
                raise MalformedBookError(f"offer {o.hash}: unknown direction {o.direction!r}")
        seen_requests: set[str] = set()
        for r in self.requests:
            if r.hash in seen_requests or r.hash in seen:
                raise MalformedBookError(f"request {r.hash} appears twice in the book")
            seen_requests.add(r.hash)
            if not _HASH_RE.match(r.hash):
                raise MalformedBookError(f"request hash {r.hash!r} is not 0x + 64 lower-case hex")
            if r.stage not in ("dso", "tso"):
                raise MalformedBookError(f"request {r.hash}: stage {r.stage!r} is not dso or tso")
            if not 0 < r.volume_w <= MAX_POWER_W:
                raise MalformedBookError(
                    f"request {r.hash}: volume_w {r.volume_w} must be in 1..{MAX_POWER_W}"
                )
            if not 0 <= r.max_price_cents_per_mwh <= _MAX_U64:
                raise MalformedBookError(f"request {r.hash}: max price out of range")
            _check_mtus(r.hash, r.mtu_starts)
            if r.direction not in (Direction.UP, Direction.DOWN):
                raise MalformedBookError(f"request {r.hash}: unknown direction {r.direction!r}")
            if not r.eligible and r.area is None:
                raise MalformedBookError(f"request {r.hash} is not located (no eligible, no area)")
            for pod, ppm in r.eligible.items():
                if not isinstance(ppm, int) or not 0 <= ppm <= PPM:
                    raise MalformedBookError(
                        f"request {r.hash}: factor_ppm {ppm!r} of {pod} outside 0..{PPM}"
                    )


def _check_mtus(what: str, mtu_starts: tuple[int, ...]) -> None:
    if not mtu_starts:
        raise MalformedBookError(f"{what}: no MTU")
    if len(set(mtu_starts)) != len(mtu_starts):
        raise MalformedBookError(f"{what}: an MTU appears twice")
    for t in mtu_starts:
        if t < 0 or t % MTU_S:
            raise MalformedBookError(f"{what}: MTU start {t} is not aligned to {MTU_S} s")
