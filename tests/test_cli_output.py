"""What ``make run`` (``exgate serve --sandbox``) prints: each uvicorn line once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from tests.conftest import free_port, migrated_database_url, sandbox_data_args, stop_all, wait_ready


def test_serve_with_sandbox_prints_each_uvicorn_line_once(tmp_path) -> None:
    """The in-process sandbox's uvicorn logs to the gateway's ``uvicorn.error`` logger, at the
    level the gateway's ``--log-level`` sets: its start-up lines (or, once the sandbox started
    first, its shutdown lines) printed a second time."""
    port = free_port()
    log = tmp_path / "stderr.txt"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "exgate", "serve", "--sandbox", "--port", str(port),
                                 "--log-level", "info", *sandbox_data_args("--sandbox-data")],
                                env={**{k: v for k, v in os.environ.items() if not k.startswith("EXGATE_")},
                                     "EXGATE_DATABASE_URL": migrated_database_url()},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_ready(f"http://127.0.0.1:{port}", "gateway", proc)
            proc.send_signal(signal.SIGINT)  # Ctrl-C, as a user stops `make run`
            proc.wait(timeout=30)
        finally:
            stop_all([proc])
    lines = log.read_text().splitlines()
    for text in ("Started server process", "Waiting for application startup.", "Application startup complete.",
                 "Uvicorn running on", "Shutting down", "Application shutdown complete.",
                 "Finished server process"):
        assert sum(text in line for line in lines) == 1, (text, lines)
