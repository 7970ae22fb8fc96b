"""Hyperliquid spot metadata, as the sandbox serves it for ``spotMeta`` and ``spotMetaAndAssetCtxs``.

Wire format of https://hyperliquid.gitbook.io/hyperliquid-docs/for-developers/api/info-endpoint/spot:
``{"tokens": [...], "universe": [...]}``. A token is ``{name, szDecimals, weiDecimals, index,
tokenId, isCanonical, evmContract, fullName, deployerTradingFeeShare}``; a pair ``{name, tokens: [base, quote], index,
isCanonical}``, named ``"PURR/USDC"`` when canonical and ``"@<index>"`` otherwise. As on
Hyperliquid, ``index`` equals the position in its list (ccxt's hyperliquid looks a pair's tokens
up by position, and a context by the pair's index), so the list is dense: the names are real
Hyperliquid spot tokens, the indices the sandbox's own (mainnet's HYPE is 150, here 4).

Token ids are deterministic (``0x`` + 32 hex digits of a hash of the name), USDC's the real one;
so are the HyperEVM contract addresses of the linked tokens (HYPE's the real system address).
Spot asset contexts are static (one price per token), except the Unit-wrapped tokens whose
perpetual the venue simulates (``UBTC`` follows ``BTC``, ``UETH`` ``ETH``): their price is given by
the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal

_SPOT_MAX_DECIMALS = 8
_SIG_FIGS = 5

# name, szDecimals, weiDecimals, isCanonical, fullName, static price in USDC, perpetual it follows,
# decimals of its HyperEVM contract (None: not linked to one)
TOKENS: tuple[tuple[str, int, int, bool, str | None, str, str | None, int | None], ...] = (
    ("USDC", 8, 8, True, None, "1", None, None),
    ("PURR", 0, 5, True, None, "0.1834", None, 18),
    ("HFUN", 2, 8, False, None, "9.512", None, None),
    ("JEFF", 0, 5, False, None, "0.4127", None, None),
    ("HYPE", 2, 8, False, "Hyperliquid", "38.512", None, 18),
    ("UBTC", 5, 10, False, "Unit Bitcoin", "77000", "BTC", 8),
    ("UETH", 4, 9, False, "Unit Ethereum", "2950.1", "ETH", 18),
    ("USOL", 3, 9, False, "Unit Solana", "142.31", "SOL", 9),
    ("USDT0", 2, 8, False, "USD\u20ae0", "1.0003", None, 6),
    ("USDE", 2, 8, False, "Ethena USDe", "0.99981", None, 18),
    ("USDH", 2, 8, False, None, "1.0001", None, 6),
    ("FEUSD", 2, 8, False, "Felix USD", "0.99932", None, 18),
    ("HPENGU", 0, 6, False, None, "0.031254", None, None),
    ("XAUT0", 4, 9, False, "Tether Gold", "4012.3", None, 6),
    ("KHYPE", 2, 8, False, "Kinetiq Staked HYPE", "38.901", None, 18),
    ("CATBAL", 0, 5, False, None, "0.91234", None, None),
)
"""The token catalogue, by index (position = index, USDC first as on Hyperliquid)."""

_EXTRA_PAIRS = (("HYPE", "USDT0"), ("UBTC", "USDT0"))
"""Pairs besides every token against USDC."""

USDC_TOKEN_ID = "0x6d1e7cde53ba9467b783cb7c530ce054"
HYPE_EVM_ADDRESS = "0x2222222222222222222222222222222222222222"
"""HYPE's system address on HyperEVM (the native token's)."""


def token_id(name: str) -> str:
    """A token's id: Hyperliquid's for USDC, else ``0x`` + 32 hex digits hashed from the name."""
    if name == "USDC":
        return USDC_TOKEN_ID
    return "0x" + hashlib.blake2b(f"hyperliquid-token|{name}".encode(), digest_size=16).hexdigest()


def evm_contract(name: str, wei_decimals: int, evm_decimals: int | None) -> dict | None:
    """A token's HyperEVM link as ``spotMeta`` gives it: ``{"address", "evm_extra_wei_decimals"}``
    (the contract's decimals less the token's wei decimals), ``None`` when unlinked. HYPE's
    address is its real system address; the others are ``0x`` + 40 hex digits hashed from the name."""
    if evm_decimals is None:
        return None
    address = HYPE_EVM_ADDRESS if name == "HYPE" else (
        "0x" + hashlib.blake2b(f"hyperliquid-evm|{name}".encode(), digest_size=20).hexdigest())
    return {"address": address, "evm_extra_wei_decimals": evm_decimals - wei_decimals}


def spot_price(price: Decimal, sz_decimals: int) -> Decimal:
    """``price`` on Hyperliquid's spot grid: 5 significant figures, at most ``8 - szDecimals`` decimals."""
    if price <= 0:
        return price
    places = max(0, min(_SPOT_MAX_DECIMALS - sz_decimals, _SIG_FIGS - 1 - price.adjusted()))
    return price.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)


def _num(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return text if "." in text else text + ".0"


def spot_meta() -> dict:
    """``spotMeta``: the token catalogue and its pairs (``PURR/USDC`` first, the rest ``@N``)."""
    tokens = [{"name": name, "szDecimals": sz, "weiDecimals": wei, "index": i, "tokenId": token_id(name),
               "isCanonical": canonical, "evmContract": evm_contract(name, wei, evm),
               "fullName": full, "deployerTradingFeeShare": "0.0" if canonical or name == "HYPE" else "1.0"}
              for i, (name, sz, wei, canonical, full, _, _, evm) in enumerate(TOKENS)]
    index = {name: i for i, (name, *_rest) in enumerate(TOKENS)}
    pairs = [(name, "USDC") for name, *_rest in TOKENS[1:]] + list(_EXTRA_PAIRS)
    universe = []
    for i, (base, quote) in enumerate(pairs):
        canonical = base == "PURR" and quote == "USDC"
        universe.append({"name": f"{base}/{quote}" if canonical else f"@{i}",
                         "tokens": [index[base], index[quote]], "index": i, "isCanonical": canonical})
    return {"tokens": tokens, "universe": universe}


def spot_contexts(meta: dict, perp_mid: Callable[[str], Decimal | None]) -> list[dict]:
    """``spotMetaAndAssetCtxs``' contexts, aligned with ``meta['universe']``.

    ``perp_mid(coin)`` gives a simulated perpetual's mid (or None): a wrapped token follows it.
    Volumes and supplies are fixed, seeded by nothing (they are not simulated).
    """
    usdc = {name: _usdc_price(name, perp_mid) for name, *_rest in TOKENS}
    out = []
    for pair in meta["universe"]:
        base, quote = (TOKENS[i] for i in pair["tokens"])
        price = spot_price(usdc[base[0]] / usdc[quote[0]], base[1])
        volume = Decimal(250_000) / max(usdc[base[0]], Decimal("0.000001"))
        volume = volume.quantize(Decimal(1).scaleb(-base[1]))
        out.append({"prevDayPx": _num(price), "dayNtlVlm": _num((volume * price).quantize(Decimal("0.000001"))),
                    "markPx": _num(price), "midPx": _num(price), "circulatingSupply": "1000000000.0",
                    "coin": pair["name"], "totalSupply": "1000000000.0", "dayBaseVlm": _num(volume)})
    return out


def _usdc_price(name: str, perp_mid: Callable[[str], Decimal | None]) -> Decimal:
    entry = next(t for t in TOKENS if t[0] == name)
    followed = perp_mid(entry[6]) if entry[6] else None
    return followed if followed is not None else Decimal(entry[5])
