"""Client channels: ``{venue|*}:{kind}[:{asset or unified symbol}]`` and what each follows.

- ``binanceusdm:ticker``: every ticker event of Binance USDⓈ-M;
- ``bybit:trades:ETH``: Bybit trades whose base asset is ETH;
- ``binanceusdm:book:BTC/USDT:USDT``: one market, by its ccxt unified symbol (has a ``/``);
- ``*:liquidation``: liquidations of every venue this gateway serves.

A channel maps to the streams it reads (one per venue, :func:`~exgate.bus.events.stream_key`)
and a filter on events; the client stream reads each stream once however many channels of a
client need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from exgate.bus.events import Event, EventKind, stream_key
from exgate.errors import echo

CHANNEL_FORM: Final = "{venue|*}:{kind}[:{asset or unified symbol}]"
MAX_CHANNEL_LENGTH: Final = 100
_FILTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/:._-]{0,63}$")
KINDS: Final = tuple(kind.value for kind in EventKind)


class ChannelError(ValueError):
    """A channel the grammar or this gateway refuses; ``channel`` is the text given, ``detail`` why."""

    def __init__(self, channel: str, detail: str) -> None:
        super().__init__(detail)
        self.channel = channel
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Channel:
    """A parsed channel.

    Attributes:
        venue: a served venue id, or ``"*"`` for all.
        kind: the event kind.
        asset: the base asset filter, upper-cased (``None``: no asset filter).
        symbol: the unified symbol filter (``None``: no symbol filter).
    """

    venue: str
    kind: EventKind
    asset: str | None = None
    symbol: str | None = None

    @property
    def name(self) -> str:
        """The canonical text, as answered in ``subscribed``."""
        tail = self.symbol or self.asset
        return f"{self.venue}:{self.kind.value}" + (f":{tail}" if tail else "")

    def streams(self, venues: Sequence[str]) -> list[str]:
        """The stream keys this channel reads (``venues``: those served)."""
        chosen = venues if self.venue == "*" else [self.venue]
        return [stream_key(venue, self.kind) for venue in chosen]

    def matches(self, event: Event) -> bool:
        """Whether ``event`` belongs to this channel."""
        if event.kind is not self.kind or (self.venue != "*" and event.venue != self.venue):
            return False
        if self.symbol is not None:
            return event.symbol == self.symbol
        if self.asset is not None:
            return (event.asset or "").upper() == self.asset
        return True


def allowed_forms(venues: Iterable[str]) -> list[str]:
    """The ``allowed`` list of a channel error: the form, then the kinds, then the venues."""
    return [CHANNEL_FORM, *KINDS, *sorted(venues)]


def parse_channel(text: object, venues: Sequence[str]) -> Channel:
    """The :class:`Channel` ``text`` names.

    Args:
        text: the channel as the client sent it.
        venues: the venue ids this gateway serves.

    Raises:
        ChannelError: not a string, too long, not ``{venue|*}:{kind}[:{filter}]``, an unknown
            venue or kind, or a filter with characters no asset or symbol has.
    """
    if not isinstance(text, str):
        raise ChannelError(echo(text), f"a channel is a string of the form {CHANNEL_FORM}")
    if len(text) > MAX_CHANNEL_LENGTH:
        raise ChannelError(text[:MAX_CHANNEL_LENGTH] + "…", f"a channel has at most {MAX_CHANNEL_LENGTH} characters")
    venue, sep, rest = text.partition(":")
    kind, _, tail = rest.partition(":")
    if not sep or not venue or not kind:
        raise ChannelError(text, f"channel {echo(text)} is not of the form {CHANNEL_FORM}")
    venue = venue.lower()
    if venue != "*" and venue not in venues:
        raise ChannelError(text, f"unknown venue {echo(venue)} in channel {echo(text)};"
                                 f" served: {', '.join(sorted(venues))} or *")
    try:
        parsed_kind = EventKind(kind.lower())
    except ValueError:
        raise ChannelError(text, f"unknown kind {echo(kind)} in channel {echo(text)};"
                                 f" kinds: {', '.join(KINDS)}") from None
    if not tail:
        return Channel(venue, parsed_kind)
    if not _FILTER.match(tail):
        raise ChannelError(text, f"filter {echo(tail)} in channel {echo(text)} is neither an asset (BTC)"
                                 " nor a unified symbol (BTC/USDT:USDT)")
    if "/" in tail:
        base, _, quote = tail.partition("/")
        return Channel(venue, parsed_kind, symbol=f"{base.upper()}/{quote.upper()}")
    return Channel(venue, parsed_kind, asset=tail.upper())


def parse_channels(texts: Iterable[object], venues: Sequence[str]) -> tuple[list[Channel], list[ChannelError]]:
    """Every good channel of ``texts`` (duplicates once, in order) and the error of every bad one."""
    good: dict[Channel, None] = {}
    bad: list[ChannelError] = []
    for text in texts:
        try:
            good[parse_channel(text, venues)] = None
        except ChannelError as exc:
            bad.append(exc)
    return list(good), bad
