"""Pacifica's request signatures: ed25519 over its canonical JSON.

As Pacifica's signing docs and ccxt's pacifica (``prepare_message`` / ``sign_message`` /
``post_action_request``) describe it: the signed message is ``{"timestamp", "expiry_window",
"type": <operation>, "data": <payload>}`` with every object's keys sorted (recursively),
serialised as compact JSON (separators ``,`` and ``:``), UTF-8; the 64-byte ed25519 signature
travels base58 in the **flat** request body ``{"account", "signature", "timestamp",
"expiry_window", ["agent_wallet",] ...payload fields}``. The key is the account's (its base58
public key is the ``account``) or, with ``agent_wallet``, an agent key the account bound.
"""

from __future__ import annotations

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from exgate.sandbox.accounts.keys import b58decode

ENVELOPE_FIELDS = ("account", "signature", "timestamp", "expiry_window", "agent_wallet")
"""Body fields that are not part of the signed payload."""


def _sorted(value: object) -> object:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [_sorted(item) for item in value]
    return value


def canonical_message(operation: str, timestamp: int, expiry_window: int, payload: dict) -> bytes:
    """The bytes an operation's signer signs (sorted keys, compact JSON, UTF-8)."""
    return orjson.dumps(_sorted({"timestamp": timestamp, "expiry_window": expiry_window, "type": operation,
                                 "data": payload}))


def payload_of(body: dict, operation: str = "") -> dict:
    """The signed payload of a flat request body: every field but the envelope's
    (``bind_agent_wallet``'s ``agent_wallet`` is its payload: the wallet being bound)."""
    envelope = [f for f in ENVELOPE_FIELDS if f != "agent_wallet" or operation != "bind_agent_wallet"]
    return {key: value for key, value in body.items() if key not in envelope}


def verify(public_key_b58: str, signature_b58: str, message: bytes) -> bool:
    """Whether ``signature_b58`` is the ed25519 signature of ``message`` by ``public_key_b58``
    (both base58; a malformed key or signature is simply not valid)."""
    try:
        key = Ed25519PublicKey.from_public_bytes(b58decode(public_key_b58, 32))
        key.verify(b58decode(signature_b58, 64), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
