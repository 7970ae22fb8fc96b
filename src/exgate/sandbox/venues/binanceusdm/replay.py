"""Replay mode for Binance USD-M: a recorded capture served at the venue's paths, paced by a test.

A cryptofeed capture is three files side by side (``NAME`` e.g. ``BINANCE_FUTURES``):

- ``NAME.ws.N.M``: the WebSocket, a first line ``url <-> ts`` then ``ts: {"stream", "data"}``
  lines (combined-stream format);
- ``NAME.http.N.M``: REST answers, ``url -> ts: body`` (the depth snapshots);
- ``NAME.0``: ``configuration: {...}`` and the ``exchangeInfo`` answer, same format.

``create_sandbox_app(replay=ws_file)`` (``exgate sandbox --replay FILE``) lists the recorded
symbols that have a depth snapshot (cryptofeed's sample: SUSHIUSDT, AKROUSDT, KEEPUSDT,
CTKUSDT) as the venue's markets; REST ``/fapi/v1/depth`` of them answers the recorded
snapshot (cut to ``limit``); their recorded streams (``@depth@100ms`` for any ``@depth``
variant, ``@aggTrade``, ``@kline_1m``, ``@bookTicker``) send the recorded events, unwrapped
to the raw payload on ``/ws`` sockets and wrapped on ``/stream`` ones. Nothing is sent until a
test releases it: ``POST /__sandbox/replay?step=N`` releases the next N recorded messages (of
every stream) and answers the position; ``GET /__sandbox/replay`` gives ``{"position",
"total", "done", "last_u": {symbol: u of the last released depth event}, "snapshots":
{symbol: lastUpdateId}, "file"}``. A socket sees what is released after it subscribed. Other
streams and routes of those symbols come from the market model as usual.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from exgate.sandbox.data import D, Recordings
from exgate.sandbox.sim import Instrument, listing_ms
from exgate.sandbox.venue import json_response
from exgate.sandbox.venues.binanceusdm.errors import error
from exgate.sandbox.venues.binanceusdm.venue import BinanceUsdm, _filter
from exgate.sandbox.venues.binanceusdm.ws import BinanceUsdmWs
from exgate.sandbox.ws.streams import Stream

_LINE = re.compile(r"^(\d+(?:\.\d+)?): (.*)$")
_HTTP = re.compile(r"^(\S+) -> (\d+(?:\.\d+)?): (.*)$")
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
MAX_STEP = 100_000
"""Most messages one ``POST /__sandbox/replay`` releases."""


def _siblings(ws_file: Path) -> tuple[Path, Path]:
    name = ws_file.name.split(".ws.")[0]
    https = sorted(ws_file.parent.glob(f"{name}.http.*"))
    if not https:
        raise FileNotFoundError(f"replay: no REST capture {name}.http.* beside {ws_file}")
    return https[0], ws_file.parent / f"{name}.0"


def _http_lines(path: Path) -> list[tuple[str, object]]:
    out = []
    for line in path.read_text().splitlines():
        match = _HTTP.match(line)
        if match:
            out.append((match.group(1), orjson.loads(match.group(3))))
    return out


class Recording:
    """A parsed capture (see the module's description).

    Attributes:
        messages: ``(stream, data)`` in recorded order.
        snapshots: symbol → recorded ``/fapi/v1/depth`` body.
        exchange_info: the recorded ``exchangeInfo`` body.
        path: the WebSocket file.

    Raises:
        FileNotFoundError: a file of the capture is missing (the message names it).
        ValueError: the files hold no stream message, no depth snapshot or no exchangeInfo.
    """

    def __init__(self, ws_file: Path | str) -> None:
        self.path = Path(ws_file)
        if not self.path.is_file():
            raise FileNotFoundError(f"replay: capture not found: {self.path}")
        http_file, info_file = _siblings(self.path)
        if not info_file.is_file():
            raise FileNotFoundError(f"replay: exchangeInfo capture not found: {info_file}")
        self.messages: list[tuple[str, dict]] = []
        for line in self.path.read_text().splitlines():
            match = _LINE.match(line)
            if match:
                body = orjson.loads(match.group(2))
                if isinstance(body, dict) and "stream" in body and "data" in body:
                    self.messages.append((body["stream"], body["data"]))
        self.snapshots: dict[str, dict] = {}
        for url, body in _http_lines(http_file):
            symbol = re.search(r"[?&]symbol=([A-Z0-9_]+)", url)
            if "/depth" in url and symbol and isinstance(body, dict) and "lastUpdateId" in body:
                self.snapshots.setdefault(symbol.group(1), body)
        self.exchange_info = next((b for u, b in _http_lines(info_file) if "exchangeInfo" in u), None)
        if not self.messages or not self.snapshots or not isinstance(self.exchange_info, dict):
            raise ValueError(f"replay: {self.path} (with {http_file.name}, {info_file.name}) holds no stream "
                             "message, depth snapshot or exchangeInfo")
        self.by_stream: defaultdict[str, list[int]] = defaultdict(list)
        for i, (stream, _) in enumerate(self.messages):
            self.by_stream[stream].append(i)


class Replay:
    """The release position over a :class:`Recording`: messages before it have been released."""

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.position = 0

    def release(self, count: int) -> int:
        """Release the next ``count`` messages (fewer at the end); the new position."""
        self.position = min(len(self.recording.messages), self.position + max(0, count))
        return self.position

    def released(self, stream: str, start: int) -> list[dict]:
        """The payloads of ``stream`` with indices in ``[start, position)``, in order."""
        indices = self.recording.by_stream.get(stream, [])
        lo, hi = bisect.bisect_left(indices, start), bisect.bisect_left(indices, self.position)
        return [self.recording.messages[i][1] for i in indices[lo:hi]]

    def state(self) -> dict:
        """What ``GET /__sandbox/replay`` answers (see the module's description)."""
        last_u: dict[str, int] = {}
        for stream, data in self.recording.messages[:self.position]:
            if data.get("e") == "depthUpdate":
                last_u[data["s"]] = data["u"]
        total = len(self.recording.messages)
        return {"file": str(self.recording.path), "position": self.position, "total": total,
                "done": self.position >= total, "last_u": last_u,
                "snapshots": {s: b["lastUpdateId"] for s, b in self.recording.snapshots.items()}}


class ReplayStream(Stream):
    """A recorded stream: what was released since the subscription, in recorded order."""

    def __init__(self, topic: str, replay: Replay, recorded: str) -> None:
        super().__init__(topic)
        self.replay, self.recorded, self.cursor = replay, recorded, replay.position

    def poll(self, now_ms: int) -> list[object]:
        position = self.replay.position
        if position <= self.cursor:
            return []
        out = self.replay.released(self.recorded, self.cursor)
        self.stage(lambda: setattr(self, "cursor", position))
        return out


class ReplayBinanceUsdmWs(BinanceUsdmWs):
    """:class:`BinanceUsdmWs` whose recorded streams come from the replay."""

    def make_stream(self, name, session, now_ms):
        replay: Replay = self.venue.replay
        lower, _, kind = name.partition("@")
        recorded = f"{lower}@depth@100ms" if kind.startswith("depth") and not kind[5:6].isdigit() else name
        if recorded in replay.recording.by_stream:
            return ReplayStream(name, replay, recorded)
        return super().make_stream(name, session, now_ms)


class ReplayBinanceUsdm(BinanceUsdm):
    """Binance USD-M over a recording: its markets, depth snapshots and streams (subclassed
    per replay by :func:`replay_venue_class`, which sets :attr:`replay`)."""

    replay: Replay

    def load(self, recordings: Recordings) -> list[Instrument]:
        recording = self.replay.recording
        info = recording.exchange_info
        self._info_doc = {k: v for k, v in info.items() if k != "symbols"}
        out = []
        for raw in info.get("symbols", []):
            snapshot = recording.snapshots.get(raw.get("symbol"))
            if not snapshot or not snapshot.get("bids"):
                continue
            out.append(Instrument(
                venue_id=raw["symbol"], base=raw["baseAsset"], quote=raw["quoteAsset"],
                tick=D(_filter(raw, "PRICE_FILTER").get("tickSize", "0.01")),
                lot=D(_filter(raw, "LOT_SIZE").get("stepSize", "0.001")), price=Decimal(snapshot["bids"][0][0]),
                raw=raw, listed_ms=listing_ms(raw.get("onboardDate")),
                bids=[(D(p), D(s)) for p, s in snapshot["bids"]], asks=[(D(p), D(s)) for p, s in snapshot["asks"]]))
        self._info_doc["symbols"] = [i.raw for i in out]
        return out

    async def depth(self, request: Request) -> Response:
        """The recorded snapshot of a replayed symbol (cut to ``limit``), else the model's book."""
        snapshot = self.replay.recording.snapshots.get(request.query_params.get("symbol", "").upper())
        if snapshot is None:
            return await super().depth(request)
        limit = self._limit(request, 500, 1000)
        if limit not in _DEPTH_LIMITS:
            return error(-1100, f"Illegal characters found in parameter 'limit'; legal range is {_DEPTH_LIMITS}.")
        return json_response({**snapshot, "bids": snapshot["bids"][:limit], "asks": snapshot["asks"][:limit]})

    def ws_protocol(self):
        return ReplayBinanceUsdmWs(self)


def replay_venue_class(replay: Replay) -> type[ReplayBinanceUsdm]:
    """A :class:`ReplayBinanceUsdm` subclass bound to ``replay`` (the app builds its venues from classes)."""
    return type("ReplayBinanceUsdm", (ReplayBinanceUsdm,), {"replay": replay})


def replay_routes(replay: Replay | None) -> list[BaseRoute]:
    """``GET /__sandbox/replay`` (:meth:`Replay.state`) and ``POST /__sandbox/replay?step=N``
    (release N messages, 1..:data:`MAX_STEP`; default 1; answers the new state). Without a
    replay both answer 404 naming how to start one; a bad ``step`` is 422 naming the range."""

    async def show(request: Request) -> Response:
        if replay is None:
            return json_response({"error": "no replay: start the sandbox with replay=FILE (exgate sandbox --replay FILE)"},
                                 status=404)
        return json_response(replay.state())

    async def step(request: Request) -> Response:
        if replay is None:
            return await show(request)
        raw = request.query_params.get("step", "1")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_STEP:
            return json_response({"error": f"step: expected a whole number in 1..{MAX_STEP} (got {raw!r})"}, status=422)
        replay.release(int(raw))
        return json_response(replay.state())

    return [Route("/__sandbox/replay", show, methods=["GET"]), Route("/__sandbox/replay", step, methods=["POST"])]
