"""Credentials of new sandbox accounts, in the shapes ccxt takes them, and the key helpers the
wallet venues verify signatures with (keccak-256 and EVM addresses for Hyperliquid, base58 and
ed25519 key pairs for Pacifica)."""

from __future__ import annotations

import secrets
import string

from ccxt.static_dependencies.keccak import SHA3 as _keccak
from coincurve import PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_ALPHANUMERIC = string.ascii_letters + string.digits
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def hmac_credentials() -> tuple[str, dict[str, str]]:
    """An API key and secret of 64 alphanumerics each (Binance's and Bybit's key shape; ccxt's
    ``apiKey``/``secret``); the key is the account id."""
    key = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(64))
    secret = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(64))
    return key, {"apiKey": key, "secret": secret}


# -- EVM (Hyperliquid) ---------------------------------------------------------------------
def keccak256(data: bytes) -> bytes:
    """Keccak-256 (Ethereum's, not NIST SHA3-256) of ``data``: 32 bytes (ccxt's bundled keccak)."""
    return bytes(_keccak(data))


def evm_address(uncompressed_public_key: bytes) -> str:
    """The EVM address of a secp256k1 public key (65 bytes, ``04`` prefix): the last 20 bytes of
    the keccak-256 of the key without its prefix, ``0x`` + 40 lower-case hex digits."""
    return "0x" + keccak256(uncompressed_public_key[1:])[-20:].hex()


def evm_credentials() -> tuple[str, dict[str, str]]:
    """A random secp256k1 key pair as ccxt's hyperliquid takes it: ``walletAddress`` (the EVM
    address, lower-case; also the account id) and ``privateKey`` (``0x`` + 64 hex digits)."""
    key = PrivateKey()
    address = evm_address(key.public_key.format(compressed=False))
    return address, {"walletAddress": address, "privateKey": "0x" + key.secret.hex()}


# -- Solana (Pacifica) -----------------------------------------------------------------------
def b58encode(data: bytes) -> str:
    """Bitcoin/Solana base58 of ``data`` (each leading zero byte a ``1``)."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, digit = divmod(number, 58)
        out.append(_B58[digit])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str, size: int | None = None) -> bytes:
    """The bytes of base58 ``text``; with ``size``, left-padded with zero bytes to that length
    (encoders that drop leading zeros, as ccxt's does, still decode to the right bytes).

    Raises:
        ValueError: a character outside the alphabet, or more than ``size`` bytes."""
    number = 0
    for char in text:
        if char not in _B58_INDEX:
            raise ValueError(f"invalid base58 character {char!r}")
        number = number * 58 + _B58_INDEX[char]
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    raw = b"\0" * zeros + body
    if size is not None:
        if len(raw) > size:
            raise ValueError(f"{len(raw)} bytes, expected {size}")
        raw = raw.rjust(size, b"\0")
    return raw


def solana_credentials() -> tuple[str, dict[str, str]]:
    """A random ed25519 key pair as ccxt's pacifica takes it: ``walletAddress`` (the base58
    public key, a Solana address; also the account id) and ``privateKey`` (the base58 64-byte
    Solana secret key: seed then public key; ccxt signs with its first 32 bytes).

    ccxt's base58 decoder drops leading zero bytes, so seeds starting with one are drawn again."""
    while True:
        key = Ed25519PrivateKey.generate()
        seed = key.private_bytes_raw()
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        if seed[0] != 0:
            break
    address = b58encode(public)
    return address, {"walletAddress": address, "privateKey": b58encode(seed + public)}
