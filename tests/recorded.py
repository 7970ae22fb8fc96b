"""Recorded exchange payloads, and a transport that serves them to a real ccxt instance.

The fixtures are real recordings kept outside the repository (``../shared/fixtures``, or the
folder named by ``EXGATE_FIXTURES``); they are read at test time and never copied in:

* ``ccxt/static/response/<id>.json``: ccxt's static response tests, one case per recorded
  call, with the venue's wire payload (``httpResponse``) and ccxt's unified output
  (``parsedResponse``);
* ``nautilus_trader/...`` and ``hyperliquid-python-sdk/...``: single REST responses (JSON
  files, vcrpy YAML cassettes) used here for the market listings ccxt loads first, and for a
  few extra wire-level cases.

The seam is the one ccxt's own static tests use: the instance's ``fetch(url, method, headers,
body)`` coroutine, so URL building, request signing, JSON handling above the socket, error
mapping and every parser run unmodified. Unlike ccxt's tests, which answer every request with
the one recorded body, :class:`RecordedTransport` routes by URL path (and query, and for
Hyperliquid's ``POST /info`` by the body's ``type``), so a request the adapter was not
expected to make fails the test instead of silently receiving the wrong payload.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import ccxt.async_support as ccxt_async

FIXTURES_ENV = "EXGATE_FIXTURES"

NAUTILUS_BINANCE = "nautilus_trader/tests/integration_tests/adapters/binance/resources/http_responses"
NAUTILUS_BYBIT = "nautilus_trader/crates/adapters/bybit/test_data"
NAUTILUS_HYPERLIQUID = "nautilus_trader/crates/adapters/hyperliquid/test_data"
NAUTILUS_KRAKEN = "nautilus_trader/crates/adapters/kraken/test_data"
SDK_CASSETTES = "hyperliquid-python-sdk/tests/cassettes/info_test"


def fixtures_root() -> Path:
    """``$EXGATE_FIXTURES``, else ``<repo>/../shared/fixtures``."""
    env = os.environ.get(FIXTURES_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"


def fixtures_available() -> bool:
    return (fixtures_root() / "ccxt" / "static" / "response").is_dir()


def path(rel: str) -> Path:
    return fixtures_root() / rel


@cache
def text(rel: str) -> str:
    """A recorded file verbatim."""
    return path(rel).read_text(encoding="utf-8")


@cache
def _ccxt_file(exchange: str) -> dict:
    return json.loads(text(f"ccxt/static/response/{exchange}.json"))


def ccxt_file(exchange: str) -> dict:
    """ccxt's static response file of ``exchange`` (a fresh copy; callers may mutate it)."""
    return copy.deepcopy(_ccxt_file(exchange))


def ccxt_case(exchange: str, method: str, description: str) -> dict:
    """One case of a ccxt static response file, by method and description."""
    for case in ccxt_file(exchange)["methods"].get(method, []):
        if case["description"] == description:
            return case
    raise LookupError(f"no ccxt case {exchange}.{method}: {description!r}")


@cache
def _cassette(rel: str) -> tuple[tuple[str, str, str, str], ...]:
    import yaml  # pyyaml: vcrpy's cassettes are YAML

    doc = yaml.safe_load(text(rel))
    out = []
    for interaction in doc.get("interactions") or []:
        request, response = interaction["request"], interaction["response"]
        out.append((request["method"], request["uri"], request.get("body") or "", response["body"]["string"]))
    return tuple(out)


def cassette_body(rel: str, info_type: str) -> str:
    """The recorded response text of the Hyperliquid ``/info`` call of ``info_type`` in a vcrpy cassette."""
    for _method, _uri, body, response in _cassette(rel):
        if body and json.loads(body).get("type") == info_type:
            return response
    raise LookupError(f"{rel} has no {info_type!r} interaction")


# -- transport ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A response body as the venue sent it (text), parsed by ccxt itself like a live one.

    Used for whole recorded files (so numbers go through ccxt's own JSON parsing, exactly as in
    production) and for malformed bodies (truncated JSON, an HTML page).
    """

    body: str
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Route:
    """One recorded answer.

    Attributes:
        path: the URL path the request must have (exact).
        reply: a decoded JSON value (as stored in ccxt's fixtures) or a :class:`Raw` body.
        method: HTTP method.
        query: pairs the request's query string must contain.
        info_type: for JSON ``POST`` bodies (Hyperliquid ``/info``): the body's ``type``.
        source: where the reply was recorded (shown when a request is unmatched).
    """

    path: str
    reply: Any
    method: str = "GET"
    query: Mapping[str, str] = field(default_factory=dict)
    info_type: str | None = None
    source: str = ""

    def matches(self, method: str, url_path: str, query: Mapping[str, str], info_type: str | None) -> bool:
        return (
            method.upper() == self.method
            and url_path == self.path
            and all(query.get(k) == v for k, v in self.query.items())
            and (self.info_type is None or self.info_type == info_type)
        )


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    path: str
    query: dict
    body: str | None
    info_type: str | None


class UnrecordedRequest(AssertionError):
    """The code under test made a request no recording answers (a test failure, not an
    upstream error: it must not be translated into an exgate error)."""


class RecordedTransport:
    """Drop-in for ``Exchange.fetch``: answers from recordings, never from the network."""

    def __init__(self, exchange: Any, routes: Iterable[Route] = ()):
        self.exchange = exchange
        self.routes: list[Route] = list(routes)
        self.requests: list[Request] = []
        self._hits: list[Route] = []

    def add(self, *routes: Route) -> None:
        # later routes win: a case's own recording overrides a generic one for the same path
        self.routes[:0] = list(reversed(routes))

    async def __call__(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        split = urlsplit(url)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        info_type = None
        if body and isinstance(body, str) and body.lstrip().startswith("{"):
            try:
                info_type = json.loads(body).get("type")
            except ValueError:
                info_type = None
        request = Request(method.upper(), url, split.path, query, body, info_type)
        self.requests.append(request)
        for route in self.routes:
            if route.matches(request.method, request.path, query, info_type):
                self._hits.append(route)
                return self._answer(route.reply, request, headers)
        raise UnrecordedRequest(
            f"{self.exchange.id}: no recording answers {request.method} {url}"
            + (f" body={body}" if body else "")
            + "; recorded: "
            + ", ".join(f"{r.method} {r.path}{'?' + str(dict(r.query)) if r.query else ''}"
                        f"{' type=' + r.info_type if r.info_type else ''}" for r in self.routes)
        )

    def _answer(self, reply: Any, request: Request, request_headers: Any) -> Any:
        """What ``Exchange.fetch`` returns after the network: the same post-processing
        (``on_rest_response``, ``parse_json``, ``handle_errors``, HTTP status check)."""
        ex = self.exchange
        if isinstance(reply, Raw):
            status, body_text, ctype = reply.status, reply.body, reply.content_type
            response_headers = {"Content-Type": ctype}
            body_text = ex.on_rest_response(status, "OK", request.url, request.method, response_headers,
                                            body_text, request_headers, request.body)
            decoded = ex.parse_json(body_text)
        else:
            status, ctype = 200, "application/json"
            response_headers = {"Content-Type": ctype}
            decoded = copy.deepcopy(reply)  # parsers may mutate what they are given
            body_text = json.dumps(reply)
        reason = "OK" if status < 400 else "Error"
        ex.handle_errors(status, reason, request.url, request.method, response_headers, body_text, decoded,
                         request_headers, request.body)
        ex.handle_http_status_code(status, reason, request.url, request.method, body_text)
        if decoded is not None:
            return decoded
        return body_text  # ccxt returns the text of a text/json response it could not decode

    def hits(self, route: Route) -> int:
        """How many requests ``route`` answered."""
        return sum(1 for hit in self._hits if hit is route)


def build_exchange(ccxt_id: str, routes: Sequence[Route] = (), *, options: Mapping[str, Any] | None = None,
                   skip_currencies: bool = False) -> tuple[Any, RecordedTransport]:
    """A real ``ccxt.async_support`` instance whose transport is a :class:`RecordedTransport`.

    ``skip_currencies`` turns off ccxt's ``fetchCurrencies`` step of ``load_markets`` for a
    venue whose currency listing was never recorded (the markets themselves still come from a
    recorded listing; ccxt's own static tests inject both from files instead).
    """
    cls = getattr(ccxt_async, ccxt_id)
    # no client-side throttling: nothing here may sleep
    exchange = cls({"enableRateLimit": False})
    exchange.timeout_on_exit = 0  # close() otherwise sleeps 250 ms for aiohttp's sake; no session exists
    if options:
        exchange.options = exchange.deep_extend(exchange.options, dict(options))
    if skip_currencies:
        exchange.has = {**exchange.has, "fetchCurrencies": False}
    transport = RecordedTransport(exchange, routes)
    exchange.fetch = transport
    return exchange, transport
