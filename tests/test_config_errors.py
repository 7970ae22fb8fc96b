"""A bad setting stops ``exgate`` with one plain line naming it and what is allowed, exit code 2
(before: a traceback with exit 3 for a bad Redis URL, typer's boxed pydantic error for a bad
number)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from exgate.config import Settings, env_name, load_settings
from exgate.errors import ConfigError


def _clean_env(env: dict[str, str]) -> dict[str, str]:
    """``env`` over a copy of this environment without any ``EXGATE_*`` setting (so the
    developer's own settings do not leak in)."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("EXGATE_")}, **env}


# Each case runs ``python -m exgate ...`` as a user would. They all start at once (each pays
# for importing ccxt), and none gets far enough to bind a port.
_UNMIGRATED = Path(__import__("tempfile").mkdtemp(prefix="exgate-unmigrated-")) / "empty.db"

CLI_CASES: dict[str, tuple[list[str], dict[str, str], list[str]]] = {
    # serve on a database without the tables (issue 10): one line naming the command that makes them
    "unmigrated-db": (["serve"], {"EXGATE_DATABASE_URL": f"sqlite:///{_UNMIGRATED}"}, ["exgate db upgrade"]),
    # a URL redis-py cannot parse failed inside the app's start-up with a traceback, exit 3
    "redis-url": (["serve"], {"EXGATE_REDIS_URL": "notaurl"},
                  ["EXGATE_REDIS_URL:", "redis://", "rediss://", "unix://", "redis+cluster://", "'notaurl'"]),
    "redis-url-secret": (["serve"], {"EXGATE_REDIS_URL": "redis://:hunter2@h:port/0"},
                         ["EXGATE_REDIS_URL:", "port must be a number", "redis://:***@h:port/0"]),
    # a cluster database passed the settings and failed in the app's start-up with a traceback, exit 3
    "redis-cluster-db": (["serve"], {"EXGATE_REDIS_URL": "redis+cluster://127.0.0.1:7000/3"},
                         ["EXGATE_REDIS_URL:", "only database 0", "'redis+cluster://127.0.0.1:7000/3'",
                          "rediss+cluster://"]),
    # an unknown option passed the settings; redis-py's TypeError at the first call cancelled the start-up
    "redis-url-option": (["serve"], {"EXGATE_REDIS_URL": "redis://127.0.0.1:6379/12?foo=bar"},
                         ["EXGATE_REDIS_URL:", "unknown option 'foo'", "socket_timeout"]),
    "redis-cluster-option": (["serve"], {"EXGATE_REDIS_URL": "redis+cluster://127.0.0.1:7000?foo=bar"},
                             ["EXGATE_REDIS_URL:", "unknown option 'foo'", "socket_timeout"]),
    # a pydantic type error printed typer's boxed traceback, exit 1
    "number": (["serve"], {"EXGATE_UPSTREAM_TIMEOUT_MS": "abc"},
               ["EXGATE_UPSTREAM_TIMEOUT_MS: must be an integer > 0 (got 'abc')"]),
    "upstreams": (["serve"], {"EXGATE_UPSTREAMS": "bybit"}, ["EXGATE_UPSTREAMS:", "VENUE=http://host:port/path"]),
    "exchanges": (["serve"], {"EXGATE_EXCHANGES": "bybit,nope"}, ["EXGATE_EXCHANGES:", "'nope'", "ccxt"]),
    "cache-ttl": (["serve"], {"EXGATE_CACHE_TTL_MS": "pricez=100"},
                  ["EXGATE_CACHE_TTL_MS", "'pricez'", "allowed: markets, prices"]),
    "cache-config": (["serve"], {"EXGATE_CACHE_CONFIG": "/nonexistent/cache.toml"},
                     ["EXGATE_CACHE_CONFIG:", "/nonexistent/cache.toml"]),
    "budgets": (["serve"], {"EXGATE_BUDGETS": "bybit=fast"}, ["EXGATE_BUDGETS", "venue=capacity/window_ms"]),
    "serve-flag-type": (["serve", "--port", "abc"], {}, ["'--port'"]),
    "serve-flag-upstream": (["serve", "--upstream", "bybit"], {}, ["--upstream:", "VENUE=http://host:port/path"]),
    "sandbox-flag": (["sandbox", "--data", "/nonexistent"], {}, ["--data:", "/nonexistent"]),
    "sandbox-env": (["sandbox"], {"EXGATE_SANDBOX_DATA": "/nonexistent"}, ["EXGATE_SANDBOX_DATA:", "/nonexistent"]),
    "several": (["serve"], {"EXGATE_UPSTREAM_TIMEOUT_MS": "abc", "EXGATE_REDIS_URL": "x", "EXGATE_BUDGETS": "bad"}, []),
}


@pytest.fixture(scope="module")
def cli_runs() -> dict[str, subprocess.CompletedProcess]:
    procs = {name: subprocess.Popen([sys.executable, "-m", "exgate", *args, *(["--port", "0"] if "--port" not in args else [])],
                                    env=_clean_env(env), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
             for name, (args, env, _) in CLI_CASES.items()}
    out = {}
    for name, proc in procs.items():
        try:
            stdout, stderr = proc.communicate(timeout=170)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        out[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return out


def assert_one_error_line(returncode: int | None, stderr: str, *expected: str) -> str:
    """Exit code 2, and stderr is exactly one ``error: ...`` line containing each of ``expected``."""
    lines = stderr.splitlines()
    assert returncode == 2, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), lines[0]
    for text in expected:
        assert text in lines[0], lines[0]
    assert "Traceback" not in stderr and "\u256d" not in stderr  # no traceback, no box
    return lines[0]


@pytest.mark.parametrize("case", [name for name in CLI_CASES if name != "several"])
def test_a_bad_setting_is_one_line_naming_it(case: str, cli_runs: dict[str, subprocess.CompletedProcess]) -> None:
    run = cli_runs[case]
    line = assert_one_error_line(run.returncode, run.stderr, *CLI_CASES[case][2])
    assert "hunter2" not in line


def test_every_bad_variable_gets_its_own_line(cli_runs: dict[str, subprocess.CompletedProcess]) -> None:
    run = cli_runs["several"]
    assert run.returncode == 2, run.stderr
    names = sorted(line.removeprefix("error: ").split(":")[0] for line in run.stderr.splitlines())
    assert names == ["EXGATE_BUDGETS", "EXGATE_REDIS_URL", "EXGATE_UPSTREAM_TIMEOUT_MS"], run.stderr


@pytest.fixture
def no_exgate_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in list(os.environ):
        if key.startswith("EXGATE_"):
            monkeypatch.delenv(key)
    return monkeypatch


def main_exit(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """Run the ``exgate`` entry point in-process with ``args`` (error cases only: they stop
    before serving); its exit code and stderr."""
    from exgate.cli import main

    monkeypatch.setattr(sys, "argv", ["exgate", *args])
    with pytest.raises(SystemExit) as caught:
        main()
    return caught.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("args", "expected"), [
    (["serve", "--port", "70000"], ["'--port'", "65535"]),
    (["serve", "--nope"], ["--nope"]),
    (["serve", "--log-level", "loud"], ["--log-level:", "info", "'loud'"]),
    (["serve", "--sandbox", "--sandbox-data", "/nonexistent"], ["--sandbox-data:", "/nonexistent"]),
    (["sandbox", "--rate-limit", "bybit=lots"], ["--rate-limit", "venue=capacity/window_ms"]),
    (["sandbox", "--ban-after", "0"], ["'--ban-after'"]),
    (["sandbox", "--log-level", "loud"], ["--log-level:"]),
])
def test_more_bad_flags(args: list[str], expected: list[str], no_exgate_env: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture) -> None:
    assert_one_error_line(*main_exit(args, no_exgate_env, capsys), *expected)


@pytest.mark.parametrize(("values", "expected"), [
    ({"lock_lease_ms": "0"}, "EXGATE_LOCK_LEASE_MS: must be an integer > 0 (got '0')"),
    ({"l1_ttl_ms": "-1"}, "EXGATE_L1_TTL_MS: must be an integer >= 0 (got '-1')"),
    ({"exchanges": ","}, "EXGATE_EXCHANGES: must name at least one ccxt exchange id"),
    ({"exchanges": "bybt"}, "EXGATE_EXCHANGES: unknown ccxt exchange id 'bybt' (did you mean bybit"),
    ({"cache_ttl_ms": "prices=soon"}, "EXGATE_CACHE_TTL_MS.prices: expected a whole number of ms, got 'soon'"),
    ({"upstreams": "bybit=ftp://x"}, "EXGATE_UPSTREAMS: upstream override 'bybit=ftp://x' must look like"),
])
def test_more_bad_values(values: dict[str, str], expected: str, no_exgate_env: pytest.MonkeyPatch) -> None:
    for field, value in values.items():
        no_exgate_env.setenv(env_name(field), value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.detail.startswith(expected), caught.value.detail
    assert "\n" not in caught.value.detail


def test_a_bad_cache_config_file_names_the_variable_and_the_table(tmp_path: Path,
                                                                   no_exgate_env: pytest.MonkeyPatch) -> None:
    config = tmp_path / "cache.toml"
    config.write_text("[cache.pricez]\nttl_ms = 100\n")
    no_exgate_env.setenv("EXGATE_CACHE_CONFIG", str(config))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.detail.startswith("EXGATE_CACHE_CONFIG: cache.pricez: unknown data type 'pricez' (allowed: markets")


def _number_fields() -> list[str]:
    out = []
    for name, info in Settings.model_fields.items():
        if info.annotation in (int, int | None, float, float | None):
            out.append(name)
    return out


@pytest.mark.parametrize("field", _number_fields())
def test_every_number_setting_names_its_variable(field: str, no_exgate_env: pytest.MonkeyPatch) -> None:
    """Generic over the model: a numeric setting added later gets the same one-line error."""
    no_exgate_env.setenv(env_name(field), "abc")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.detail.startswith(f"{env_name(field)}: must be ")
    assert caught.value.detail.endswith("(got 'abc')")
    assert "\n" not in caught.value.detail


# Every Redis URL form, through these settings and the client alike: tests/test_redis_cluster.py (REDIS_URLS).
