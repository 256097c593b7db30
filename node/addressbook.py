"""The address book: where the flexledger contracts live on one chain.

Written by `node.deploy`, read by every component that talks to the chain.

    {"chain_id": 31337, "deploy_block": 1, "deployer": "0x…",
     "addresses": {"FlexRoles": "0x…", …}, "artifacts_sha256": {"FlexRoles": "…", …},
     "window_seconds": 900}
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address

__all__ = ["CONTRACT_NAMES", "AddressBook"]

#: Deployment order; each depends only on those before it.
CONTRACT_NAMES = (
    "FlexRoles",
    "MeasurementAnchor",
    "BaselineRegistry",
    "FlexMarket",
    "SettlementToken",
    "Settlement",
)


@dataclass(frozen=True)
class AddressBook:
    chain_id: int
    addresses: dict[str, str]
    deploy_block: int
    artifacts_sha256: dict[str, str] = field(default_factory=dict)
    deployer: str = ""
    window_seconds: int = 900

    def address(self, name: str) -> str:
        try:
            return self.addresses[name]
        except KeyError:
            raise KeyError(f"{name} is not in the address book") from None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AddressBook:
        return cls(
            chain_id=int(data["chain_id"]),
            addresses={k: to_checksum_address(v) for k, v in data["addresses"].items()},
            deploy_block=int(data["deploy_block"]),
            artifacts_sha256=dict(data.get("artifacts_sha256", {})),
            deployer=data.get("deployer", ""),
            window_seconds=int(data.get("window_seconds", 900)),
        )

    def save(self, path: Path | str) -> None:
        """Write atomically (a reader never sees half a file)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path | str) -> AddressBook:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
