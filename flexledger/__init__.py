"""flexledger: a local flexibility market for grid operators, settled from signed measurements."""

import os

# eth-hash (behind eth_utils.keccak, address checksums and web3) tries pycryptodome first;
# safe-pysha3's C keccak (a dependency, see pyproject.toml) is about four times faster, and the
# protocol hashes millions of times a simulated day. An explicit ETH_HASH_BACKEND still wins.
if "ETH_HASH_BACKEND" not in os.environ:
    try:
        import sha3  # noqa: F401

        os.environ["ETH_HASH_BACKEND"] = "pysha3"
    except ImportError:  # pragma: no cover - the fallback backend is only slower
        pass
