"""The sandbox ASGI app: every simulated venue under ``/{venue}/`` plus ``/__sandbox/*``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from exgate.sandbox.accounts import DEFAULT_HISTORY_LAG_MS
from exgate.sandbox.accounts.routes import account_routes
from exgate.sandbox.clock import check_skews, clock_routes
from exgate.sandbox.data import Recordings, default_data_dir
from exgate.sandbox.market.model import MarketModel
from exgate.sandbox.limits import LimitMiddleware, RateLimiter, rules_for
from exgate.sandbox.sim import Clock, wall_clock_ms
from exgate.sandbox.stats import SandboxStats, StatsMiddleware
from exgate.sandbox.venue import SandboxVenue, json_response
from exgate.sandbox.venues import VENUES
from exgate.sandbox.venues.binanceusdm.replay import Recording, Replay, replay_routes, replay_venue_class
from exgate.sandbox.ws import WsHub

DEFAULT_SEED = 7


def create_sandbox_app(
    data_dir: Path | None = None,
    *,
    seed: int = DEFAULT_SEED,
    clock: Clock = wall_clock_ms,
    venues: list[str] | None = None,
    limits: dict[str, tuple[int, int]] | None = None,
    ban_after: int | None = None,
    ban_ms: int | None = None,
    history_lag_ms: int = DEFAULT_HISTORY_LAG_MS,
    clock_skew: Mapping[str, int] | None = None,
    replay: Path | str | None = None,
) -> Starlette:
    """Build the sandbox app.

    Args:
        data_dir: folder of recorded payloads (default: :func:`default_data_dir`).
        seed: random-walk seed; the same seed and clock give the same data.
        clock: returns the time in ms; inject a fixed one in tests for exact values.
        venues: venue names to serve (default: all of :data:`VENUES`).
        limits: venue → (capacity, window ms) replacing the published IP budgets of
            :data:`~exgate.sandbox.limits.DEFAULT_RULES` (tests lower or raise them).
        ban_after: rejected requests in one window before a 418 ban; ban_ms: its length.
        history_lag_ms: how long a fill takes to show in a venue's trade history.
        clock_skew: venue → ms its server clock runs ahead of ``clock`` (negative: behind), see
            :mod:`exgate.sandbox.clock`; changed later with ``POST /__sandbox/clock``.
        replay: a recorded Binance USD-M capture (cryptofeed's ``BINANCE_FUTURES.ws.1.0``, its
            ``.http`` and ``.0`` files beside it) the ``binanceusdm`` venue serves instead of
            its recorded markets, paced by ``POST /__sandbox/replay?step=N``
            (:mod:`exgate.sandbox.venues.binanceusdm.replay`).

    Raises:
        ValueError: a ``clock_skew`` venue that is not served, or a skew that is not an int
            within ±1 day; a ``replay`` without ``binanceusdm`` served, or a capture without
            messages, snapshots or exchangeInfo.
        FileNotFoundError: a file of the ``replay`` capture is missing.

    The app's ``state.venues`` maps names to :class:`SandboxVenue`, ``state.stats`` is the
    :class:`SandboxStats`, ``state.ws`` the :class:`~exgate.sandbox.ws.WsHub` (each venue's
    WebSocket counters also show in ``/__sandbox/stats`` under ``venues.<venue>.ws``).
    """
    served = [name for name in VENUES if venues is None or name in venues]
    skews = check_skews(dict(clock_skew or {}), served, "clock_skew")  # before the costly set-up
    player = None
    classes = dict(VENUES)
    if replay is not None:
        if "binanceusdm" not in served:
            raise ValueError("replay: the capture is Binance USD-M's: serve binanceusdm with it")
        player = Replay(Recording(replay))
        classes["binanceusdm"] = replay_venue_class(player)
    root = data_dir if data_dir is not None else default_data_dir()
    recordings = Recordings(root)
    t0 = clock()
    model = MarketModel(seed, recordings)  # one fair price per asset, shared by every venue
    sims: dict[str, SandboxVenue] = {
        name: cls(recordings, seed=seed, clock=clock, t0_ms=t0, model=model, history_lag_ms=history_lag_ms)
        for name, cls in classes.items()
        if venues is None or name in venues
    }
    for name, skew in skews.items():
        sims[name].skew_ms = skew
    stats = SandboxStats()
    for venue in sims.values():
        venue.stats = stats
    limiter = RateLimiter({v: r for v, r in rules_for(limits, ban_after=ban_after, ban_ms=ban_ms).items()
                           if v in sims}, clock)

    hub = WsHub(clock)
    protocols = {name: venue.ws_protocol() for name, venue in sims.items()}

    async def get_stats(request: Request) -> Response:
        snap = stats.snapshot(list(sims))
        for name, venue in sims.items():
            snap["venues"][name]["synthetic"] = venue.synthetic
            snap["venues"][name]["limit"] = limiter.snapshot(name)
            snap["venues"][name]["ws"] = hub.snapshot(name)
        return json_response(snap)

    async def throttle(request: Request) -> Response:
        """``?venue=V&status=429|418&retry_after_s=S``: answer every request with that status
        for S seconds; ``?venue=V&delay_ms=D[&count=N]``: answer the next N requests (default:
        every request until ``delay_ms=0`` or a reset, which also lets the held ones go on) only
        after D ms, as a slow or hung exchange would (the sandbox's loop keeps serving)."""
        q = request.query_params
        if "delay_ms" in q:
            venue, delay, count = q.get("venue", ""), q["delay_ms"], q.get("count")
            if venue not in sims or not delay.isdigit() or (count is not None and not count.isdigit()):
                return json_response({"error": "expected venue in " + ",".join(sims)
                                      + ", delay_ms (whole ms) and optionally count (whole number)"}, status=422)
            limiter.delay(venue, int(delay), int(count) if count is not None else None)
            return json_response({"venue": venue, "delay_ms": int(delay),
                                  "count": int(count) if count is not None else None})
        venue, status = q.get("venue", ""), q.get("status", "429")
        if venue not in sims or status not in ("429", "418") or not q.get("retry_after_s", "").isdigit():
            return json_response({"error": "expected venue in " + ",".join(sims) + ", status 429|418, retry_after_s"},
                                 status=422)
        limiter.inject(venue, int(status), int(q["retry_after_s"]))
        return json_response({"venue": venue, "status": int(status), "retry_after_s": int(q["retry_after_s"])})

    async def reset_stats(request: Request) -> Response:
        """Zero the request counters and forget the rate limiter's usage, bans and delays. Only
        those: accounts, their orders and the venues' clock skews (``/__sandbox/clock``) stay."""
        stats.reset()
        limiter.reset()
        hub.reset_counters()
        return json_response({"reset": True})

    routes = [
        Route("/__sandbox/stats", get_stats, methods=["GET"]),
        Route("/__sandbox/reset", reset_stats, methods=["POST"]),
        Route("/__sandbox/throttle", throttle, methods=["POST"]),
        *clock_routes(sims, clock),
        *account_routes(sims),
        *hub.control_routes(list(sims)),
        *replay_routes(player),
        *(Mount(f"/{name}", routes=venue.routes() + (hub.routes(protocols[name]) if protocols[name] else []))
          for name, venue in sims.items()),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(LimitMiddleware, limiter=limiter)
    app.add_middleware(StatsMiddleware, stats=stats, venues=set(sims))  # outermost: counts 429/418 too
    app.state.venues = sims
    app.state.model = model
    app.state.stats = stats
    app.state.limiter = limiter
    app.state.ws = hub
    app.state.replay = player
    app.state.clock = clock
    app.state.data_dir = root
    return app
