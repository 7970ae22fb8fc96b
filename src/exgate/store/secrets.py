"""Credential encryption at rest: Fernet tokens, keys rotating through MultiFernet.

``EXGATE_SECRET_KEYS`` is a comma list of Fernet keys (urlsafe base64 of 32 bytes, as
``cryptography.fernet.Fernet.generate_key()`` makes): the first key encrypts, every key
decrypts, so a new key is put first, ``exgate secrets rotate`` re-encrypts every row with it,
and the old key can then be dropped.
"""

from __future__ import annotations

import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from exgate.errors import ConfigError

ENV = "EXGATE_SECRET_KEYS"


class SecretBox:
    """Encrypts credential dicts (``{"apiKey": ..., "secret": ...}``) into Fernet tokens.

    Args:
        keys: Fernet keys, the first encrypts, all decrypt (at least one).

    Raises:
        ConfigError: no key, or a key that is not a Fernet key (the key is never echoed).

    The repr shows how many keys there are, never a key.
    """

    __slots__ = ("_fernet", "_count")

    def __init__(self, keys: list[str]) -> None:
        keys = [k.strip() for k in keys if k and k.strip()]
        if not keys:
            raise ConfigError(f"{ENV}: must hold at least one Fernet key", fields=[ENV])
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise ConfigError(f"{ENV}: key {position} of {len(keys)} is not a Fernet key (32 url-safe"
                                  " base64-encoded bytes, e.g. from `python -c \"from cryptography.fernet import"
                                  " Fernet; print(Fernet.generate_key().decode())\"`)", fields=[ENV]) from None
        self._fernet = MultiFernet(fernets)
        self._count = len(fernets)

    @classmethod
    def from_env(cls, value: str | None) -> SecretBox | None:
        """The box of an ``EXGATE_SECRET_KEYS`` value (comma list), ``None`` when unset or blank.

        Raises:
            ConfigError: a key is malformed (named by position, not echoed).
        """
        if value is None or not value.strip():
            return None
        return cls(value.split(","))

    @classmethod
    def generate(cls) -> SecretBox:
        """A box with one fresh random key (``serve --sandbox`` without ``EXGATE_SECRET_KEYS``:
        what it encrypts is unreadable once the process ends)."""
        return cls([Fernet.generate_key().decode()])

    @property
    def key_count(self) -> int:
        """How many keys decrypt (the first of them encrypts)."""
        return self._count

    def encrypt(self, data: dict[str, str]) -> bytes:
        """A Fernet token of ``data`` as JSON, made with the first key."""
        return self._fernet.encrypt(json.dumps(data, separators=(",", ":"), sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, str]:
        """The dict a token holds.

        Raises:
            ConfigError: no key of ``EXGATE_SECRET_KEYS`` opens the token (a key was dropped
                before ``exgate secrets rotate`` ran) or it is corrupt.
        """
        try:
            return json.loads(self._fernet.decrypt(bytes(token)))
        except InvalidToken:
            raise ConfigError(f"{ENV}: no configured key decrypts these stored credentials (was the key that"
                              " wrote them removed before `exgate secrets rotate`?)", fields=[ENV]) from None

    def rotate(self, token: bytes) -> bytes:
        """``token`` re-encrypted with the first key (its original timestamp kept).

        Raises:
            ConfigError: as :meth:`decrypt`.
        """
        try:
            return self._fernet.rotate(bytes(token))
        except InvalidToken:
            raise ConfigError(f"{ENV}: no configured key decrypts these stored credentials (was the key that"
                              " wrote them removed before `exgate secrets rotate`?)", fields=[ENV]) from None

    def __repr__(self) -> str:
        return f"SecretBox(<{self._count} key{'s' if self._count != 1 else ''}>)"

    def __reduce__(self):  # never pickled (a pickle would carry the keys)
        raise TypeError("SecretBox cannot be pickled")
