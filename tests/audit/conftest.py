"""The auditor's tests reuse the market tests' chain fixtures (one anvil, snapshot per test)."""

from tests.market.conftest import contracts, market_contracts, market_devnet

__all__ = ["contracts", "market_contracts", "market_devnet"]
