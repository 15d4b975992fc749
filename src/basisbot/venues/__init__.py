"""Venue profiles: one per exchange, holding what differs between exchanges (see :mod:`basisbot.venues.profile`).

`get_profile(name)` returns the profile of the config's ``[exchange] name``; profiles are imported on first use."""

from __future__ import annotations

from importlib import import_module

from basisbot.venues.profile import AccountModel, FundingRules, MarketSpec, VenueDataError, VenueFees, VenueProfile

__all__ = ["DEFAULT_EXCHANGE", "AccountModel", "FundingRules", "MarketSpec", "VenueDataError", "VenueFees", "VenueProfile", "PROFILES",
           "get_profile"]

DEFAULT_EXCHANGE = "binance"  # the venue of a config without `[exchange] name`

# exchange name -> (module, attribute) of its profile
PROFILES: dict[str, tuple[str, str]] = {
    "binance": ("basisbot.venues.binance.profile", "BINANCE"),
    "okx": ("basisbot.venues.okx.profile", "OKX"),
}


def get_profile(name: str) -> VenueProfile:
    """The profile of exchange `name` (the config's ``[exchange] name``); an unknown name is a ValueError listing the
    known ones."""
    try:
        entry = PROFILES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown exchange {name!r}: known venues are {', '.join(sorted(PROFILES))}") from None
    if isinstance(entry, VenueProfile):
        return entry
    module, attr = entry
    return getattr(import_module(module), attr)
