"""The leaf encodings, re-exported for the ledger layer (they live in the protocol, floor 1)."""

from flexledger.messages.leaves import *  # noqa: F403
from flexledger.messages.leaves import __all__  # noqa: F401
