"""Venue adapters: the interface, the ccxt-backed implementation and per-venue profiles."""

from exgate.venues.base import Capabilities, ExchangeAdapter
from exgate.venues.ccxt_adapter import CcxtAdapter
from exgate.venues.profiles import PROFILES, VenueProfile, profile_for
from exgate.venues.registry import DEFAULT_VENUES, build_adapters

__all__ = [
    "Capabilities", "CcxtAdapter", "DEFAULT_VENUES", "ExchangeAdapter", "PROFILES", "VenueProfile",
    "build_adapters", "profile_for",
]
