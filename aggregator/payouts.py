"""Owner payouts (I-17) from the market's settlement (pure).

Per FR owner, what its awards earned net of what they owe — ``Σ amount − Σ claim`` of its
settled awards — less the aggregator's fee: ``round_half_even(net × (1 − fee))``, never below
zero. A claim (a penalty beyond an award's amount) is netted against the same owner's other
awards of the session, never charged to another owner.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping

from flexledger.units import PPM, round_half_even_div

__all__ = ["owner_payouts"]


def owner_payouts(
    lines: Iterable[tuple[str, int, int]], owner_of: Mapping[str, str], fee_ppm: int
) -> dict[str, int]:
    """FR owner → cents: ``lines`` are (offer hash, amount, claim) of settled awards;
    ``owner_of`` maps the aggregator's offers to their FR owner (others are not ours)."""
    if not 0 <= fee_ppm <= PPM:
        raise ValueError("fee_ppm must be within [0, 1,000,000]")
    net: dict[str, int] = defaultdict(int)
    for offer_hash, amount, claim in lines:
        owner = owner_of.get(offer_hash)
        if owner is not None:
            net[owner] += amount - claim
    return {
        owner: max(0, round_half_even_div(cents * (PPM - fee_ppm), PPM))
        for owner, cents in sorted(net.items())
    }
