"""Keys: deterministic dev keys for the demo and tests, encrypted keystores for real use."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

__all__ = ["dev_account", "load_account", "load_keystore", "save_keystore"]

_DEV_PREFIX = b"flexledger-dev:"


def dev_account(name: str) -> LocalAccount:
    """A deterministic, publicly known key for ``name`` (``market``, ``dso``, ``ln:IT001…``).

    Only for devnets: anyone can derive it.
    """
    return Account.from_key(keccak(_DEV_PREFIX + name.encode("utf-8")))


def save_keystore(account: LocalAccount, path: Path, password: str) -> None:
    """Write an encrypted (scrypt) JSON keystore, readable by geth and eth-account."""
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = Account.encrypt(account.key, password)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(blob))
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def load_keystore(path: Path, password: str) -> LocalAccount:
    try:
        blob = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read keystore {path}: {exc}") from exc
    try:
        return Account.from_key(Account.decrypt(blob, password))
    except ValueError as exc:
        raise ValueError(f"cannot decrypt keystore {path}: wrong password or corrupt file") from exc


def load_account(spec: str, password: str | None = None) -> LocalAccount:
    """A key from the CLI's ``--key``: ``dev:NAME``, a keystore path, or a 0x-hex private key."""
    if spec.startswith("dev:"):
        return dev_account(spec[4:])
    if spec.startswith("0x") and len(spec) == 66:
        return Account.from_key(spec)
    path = Path(spec)
    if path.exists():
        if password is None:
            password = os.environ.get("FLEX_KEY_PASSWORD", "")
        return load_keystore(path, password)
    raise ValueError(f"--key {spec!r}: not dev:NAME, a keystore file or a 0x private key")
