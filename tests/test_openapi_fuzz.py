"""The OpenAPI document describes the API exactly: schemathesis fuzzes every operation of the
live gateway (over the sandbox) with all its checks on, and none may fail.

It runs schemathesis' own runner (``schemathesis run``: examples, coverage and fuzzing phases)
against the session gateway, so a route added later is fuzzed as soon as it is in the
document. (Its pytest plugin is not used: ``from_fixture`` breaks on pytest 9.2.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerThread

EXAMPLES_PER_OPERATION = 20  # bounded: the whole run stays well under two minutes on 2 cores
SEED = 8  # reproducible: a failure here reproduces with the same command

# Per-operation exceptions, each for a documented reason (see tests/schemathesis_hooks.py):
# a schema-valid value may still be outside what the venue in the path accepts (depth, limit,
# interval), and DELETE /v1/cache needs one key or tag; such a 422 is accepted by
# positive_data_acceptance there and checked to be exactly that rule by venue_rule_422.
# GET /v1/stream/sse is not fuzzed: a valid channel opens an endless event stream (its 422s,
# HEAD and documentation are checked in tests/test_client_stream.py).
CONFIG = """
[[operations]]
include-path-regex = "/(orderbook|trades|klines)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]

[[operations]]
include-path = "/v1/connections"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]

[[operations]]
include-path = "/v1/stream/sse"
enabled = false

[[operations]]
include-path = "/v1/cache"
include-method = "DELETE"
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx", "422"]
"""

# The stateful phase is left out: the API has no links between operations to follow.
PHASES = "examples,coverage,fuzzing"


ADMIN_TOKEN = "fuzz-operator-token"


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory) -> tuple[str, str]:
    """A migrated store with one tenant: (database URL, tenant key)."""
    from tests.accounts_harness import create_tenant, make_store, run

    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('fuzz-store')}/exgate.db"
    run(make_store(url).close())
    return url, create_tenant(url, "fuzz").key


@pytest.fixture(scope="module")
def operated_gateway(sandbox: ServerThread, fuzz_store: tuple[str, str]) -> Iterator[ServerThread]:
    """The session gateway's setup plus an operator token, so ``DELETE /v1/cache`` is fuzzed
    past its 401/403 (schemathesis sends the token, and checks what happens without it), and
    a store with a tenant, so the private routes are fuzzed past their 401 (see the hooks)."""
    from exgate.config import Settings
    from exgate.http.app import create_app
    from exgate.store import SecretBox, Store
    from exgate.venues.registry import DEFAULT_VENUES, build_adapters
    from tests.accounts_harness import SECRET_KEY

    upstreams = {venue: f"{sandbox.url}/{venue}" for venue in DEFAULT_VENUES}
    app = create_app(build_adapters(DEFAULT_VENUES, upstreams), settings=Settings(admin_token=ADMIN_TOKEN),
                     store=Store(fuzz_store[0], SecretBox([SECRET_KEY])))
    with ServerThread(app) as server:
        for _ in range(300):  # fuzz a started gateway: a venue still loading answers 503 by design
            if httpx.get(f"{server.url}/healthz").status_code == 200:
                break
            time.sleep(0.1)
        yield server


def test_every_operation_answers_as_documented(operated_gateway: ServerThread, fuzz_store, tmp_path: Path):
    gateway = operated_gateway
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "--no-color",
               "run", f"{gateway.url}/openapi.json", "--checks", "all", "--phases", PHASES,
               "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--workers", "1",
               "--header", f"Authorization: Bearer {ADMIN_TOKEN}"]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks", "EXGATE_FUZZ_TENANT_KEY": fuzz_store[1],
           "EXGATE_FUZZ_ADMIN_TOKEN": ADMIN_TOKEN,
           "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)}
    run = subprocess.run(command, capture_output=True, text=True, timeout=170, cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
