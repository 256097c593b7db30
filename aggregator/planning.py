"""FR owner planning (I-13) from the market's outcome (pure).

Every award of the final outcome on one of the aggregator's offers becomes a plan item
of that offer's FR owner and POD (time frame and power); consecutive MTUs of one offer at one
power merge into one item.
"""

from __future__ import annotations

from collections.abc import Iterable

from flexledger.messages import Award, PlanItem
from flexledger.time import MTU_S

__all__ = ["plan_items"]


def plan_items(awards: Iterable[Award]) -> list[PlanItem]:
    """The plan items of some awards (of one owner and POD), merged by offer and power."""
    out: list[PlanItem] = []
    for a in sorted(awards, key=lambda a: (a.offer_hash, a.mtu_start_s)):
        last = out[-1] if out else None
        if (
            last is not None
            and last.offer_hash == a.offer_hash
            and last.power_w == a.power_w
            and last.mtu_start_s + last.mtu_count * MTU_S == a.mtu_start_s
        ):
            out[-1] = last.model_copy(update={"mtu_count": last.mtu_count + 1})
            continue
        out.append(
            PlanItem(
                offer_hash=a.offer_hash,
                direction=a.direction,
                mtu_start_s=a.mtu_start_s,
                mtu_count=1,
                power_w=a.power_w,
            )
        )
    return sorted(out, key=lambda i: (i.mtu_start_s, i.offer_hash))
