"""Hyperliquid's ``/exchange`` signatures: the EIP-712 digests it signs and signer recovery.

Two schemes (https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/signing, and
ccxt's hyperliquid ``sign_l1_action`` / ``action_hash`` / ``construct_phantom_agent`` /
``sign_user_signed_action``, which produce them):

* **L1 actions** (``order``, ``cancel``, ``cancelByCloid``, ``updateLeverage``, ``setReferrer``,
  ...): the "phantom agent" ``Agent(string source,bytes32 connectionId)`` under the domain
  ``{name "Exchange", version "1", chainId 1337, verifyingContract 0x0…0}``; ``source`` is
  ``"a"`` on mainnet, ``"b"`` on testnet; ``connectionId = keccak(msgpack(action) ‖ nonce as
  8 bytes big-endian ‖ 0x00 | 0x01 ‖ vault address [‖ 0x00 ‖ expiresAfter as 8 bytes])``.
* **User-signed actions** (``approveBuilderFee``, ``approveAgent``, ``usdClassTransfer``, ...):
  the action's own fields as the typed struct ``HyperliquidTransaction:<Name>`` under the
  domain ``{name "HyperliquidSignTransaction", version "1", chainId = the action's
  signatureChainId, verifyingContract 0x0…0}``.

The signature ``{"r", "s", "v"}`` (``v`` 27/28) is a recoverable secp256k1 signature of the
digest; the signer's address is recovered with coincurve.
"""

from __future__ import annotations

from ccxt.static_dependencies.msgpack import packb
from coincurve import PublicKey

from exgate.sandbox.accounts.keys import evm_address, keccak256

ZERO_ADDRESS = "0x" + "00" * 20
_DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
_AGENT_TYPE = "Agent(string source,bytes32 connectionId)"

USER_SIGNED_TYPES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "approveBuilderFee": ("HyperliquidTransaction:ApproveBuilderFee",
                          [("hyperliquidChain", "string"), ("maxFeeRate", "string"), ("builder", "address"),
                           ("nonce", "uint64")]),
    "approveAgent": ("HyperliquidTransaction:ApproveAgent",
                     [("hyperliquidChain", "string"), ("agentAddress", "address"), ("agentName", "string"),
                      ("nonce", "uint64")]),
    "usdClassTransfer": ("HyperliquidTransaction:UsdClassTransfer",
                         [("hyperliquidChain", "string"), ("amount", "string"), ("toPerp", "bool"),
                          ("nonce", "uint64")]),
    "usdSend": ("HyperliquidTransaction:UsdSend",
                [("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"),
                 ("time", "uint64")]),
    "withdraw3": ("HyperliquidTransaction:Withdraw",
                  [("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"),
                   ("time", "uint64")]),
    "userSetAbstraction": ("HyperliquidTransaction:UserSetAbstraction",
                           [("hyperliquidChain", "string"), ("user", "address"), ("abstraction", "string"),
                            ("nonce", "uint64")]),
}
"""User-signed action ``type`` → (primary type, its fields), as ccxt's ``build_*_sig`` sign them."""


class BadSignature(ValueError):
    """A signature that does not parse or recovers no key."""


def _word(kind: str, value) -> bytes:
    """One EIP-712 encoded member (32 bytes)."""
    if kind == "string":
        return keccak256(str(value).encode())
    if kind == "bytes32":
        raw = bytes(value)
        if len(raw) != 32:
            raise BadSignature("bytes32 member of the wrong length")
        return raw
    if kind == "address":
        text = str(value).lower().removeprefix("0x")
        raw = bytes.fromhex(text)
        if len(raw) != 20:
            raise BadSignature("address member of the wrong length")
        return raw.rjust(32, b"\0")
    if kind == "bool":
        return int(bool(value)).to_bytes(32, "big")
    if kind.startswith("uint"):
        return int(value).to_bytes(32, "big")
    raise BadSignature(f"unsupported EIP-712 type {kind}")


def _struct_hash(type_string: str, members: list[tuple[str, object]]) -> bytes:
    return keccak256(keccak256(type_string.encode()) + b"".join(_word(k, v) for k, v in members))


def eip712_digest(domain_name: str, chain_id: int, primary: str, fields: list[tuple[str, str]],
                  message: dict) -> bytes:
    """keccak(0x1901 ‖ domainSeparator ‖ hashStruct(message)) for a flat struct."""
    domain = _struct_hash(_DOMAIN_TYPE, [("string", domain_name), ("string", "1"), ("uint256", chain_id),
                                         ("address", ZERO_ADDRESS)])
    type_string = f"{primary}(" + ",".join(f"{kind} {name}" for name, kind in fields) + ")"
    body = _struct_hash(type_string, [(kind, message[name]) for name, kind in fields])
    return keccak256(b"\x19\x01" + domain + body)


def action_hash(action: dict, nonce: int, vault_address: str | None, expires_after: int | None = None) -> bytes:
    """The ``connectionId`` of an L1 action (msgpack of the action as sent, key order kept)."""
    data = packb(action) + int(nonce).to_bytes(8, "big")
    if vault_address is None:
        data += b"\0"
    else:
        data += b"\1" + bytes.fromhex(vault_address.lower().removeprefix("0x"))
    if expires_after is not None:
        data += b"\0" + int(expires_after).to_bytes(8, "big")
    return keccak256(data)


def l1_digest(action: dict, nonce: int, vault_address: str | None, expires_after: int | None, source: str) -> bytes:
    """The digest an L1 action's signer signed (``source`` ``"a"`` mainnet, ``"b"`` testnet)."""
    connection = action_hash(action, nonce, vault_address, expires_after)
    return eip712_digest("Exchange", 1337, "Agent", [("source", "string"), ("connectionId", "bytes32")],
                         {"source": source, "connectionId": connection})


def user_signed_digest(action: dict) -> bytes:
    """The digest of a user-signed action (its ``type`` in :data:`USER_SIGNED_TYPES`).

    Raises:
        KeyError / ValueError: an unknown type, a missing field or a bad ``signatureChainId``."""
    primary, fields = USER_SIGNED_TYPES[action["type"]]
    chain_id = int(str(action["signatureChainId"]), 16)
    return eip712_digest("HyperliquidSignTransaction", chain_id, primary, fields, action)


def recover_signer(digest: bytes, signature: object) -> str:
    """The address (lower-case ``0x`` hex) whose key made ``signature`` ``{"r","s","v"}`` over
    ``digest``.

    Raises:
        BadSignature: a malformed signature or one that recovers no key."""
    if not isinstance(signature, dict):
        raise BadSignature("signature must be an object with r, s and v")
    try:
        r = int(str(signature["r"]), 16).to_bytes(32, "big")
        s = int(str(signature["s"]), 16).to_bytes(32, "big")
        v = int(signature["v"])
        recovery = v - 27 if v >= 27 else v
        if recovery not in (0, 1):
            raise BadSignature("v must be 27 or 28")
        key = PublicKey.from_signature_and_message(r + s + bytes([recovery]), digest, hasher=None)
    except BadSignature:
        raise
    except Exception as exc:  # malformed numbers, invalid points
        raise BadSignature(str(exc)) from exc
    return evm_address(key.format(compressed=False))
