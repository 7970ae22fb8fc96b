"""Credentials of new sandbox accounts, in the shapes ccxt takes them."""

from __future__ import annotations

import secrets
import string

_ALPHANUMERIC = string.ascii_letters + string.digits


def hmac_credentials() -> tuple[str, dict[str, str]]:
    """An API key and secret of 64 alphanumerics each (Binance's and Bybit's key shape; ccxt's
    ``apiKey``/``secret``); the key is the account id."""
    key = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(64))
    secret = "".join(secrets.choice(_ALPHANUMERIC) for _ in range(64))
    return key, {"apiKey": key, "secret": secret}
