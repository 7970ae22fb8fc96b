"""Where the sandbox's recorded payloads come from, and reading them.

Order of precedence for the data folder: an explicit ``--data DIR``, ``EXGATE_SANDBOX_DATA``,
``EXGATE_FIXTURES``, then ``../shared/fixtures`` beside the working directory or the project
checkout. With none of these, each venue falls back to a small synthetic data set it builds
itself (clearly marked ``"synthetic": true`` in ``/__sandbox/stats``).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def default_data_dir() -> Path | None:
    """The recorded-payload folder to use when none is given, or ``None`` (synthetic data)."""
    for env in ("EXGATE_SANDBOX_DATA", "EXGATE_FIXTURES"):
        value = os.environ.get(env)
        if value:
            return Path(value)
    for candidate in (Path.cwd().parent / "shared" / "fixtures", _PROJECT_ROOT.parent / "shared" / "fixtures"):
        if candidate.is_dir():
            return candidate
    return None


class Recordings:
    """Read-only access to recorded payloads below ``root`` (``None``: nothing recorded)."""

    def __init__(self, root: Path | None):
        self.root = root
        self._ccxt: dict[str, dict] = {}

    def json(self, relpath: str) -> Any | None:
        """The parsed JSON document at ``root/relpath``, or ``None`` if absent or invalid."""
        if self.root is None:
            return None
        path = self.root / relpath
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def ccxt_response(self, exchange: str, method: str, description: str | None = None) -> Any | None:
        """The recorded ``httpResponse`` of ccxt's static test for ``exchange.method``.

        With ``description``, the case whose description contains it; else the first case.
        """
        if exchange not in self._ccxt:
            self._ccxt[exchange] = self.json(f"ccxt/static/response/{exchange}.json") or {}
        for case in self._ccxt[exchange].get("methods", {}).get(method, []):
            if description is None or description in case.get("description", ""):
                return case.get("httpResponse")
        return None


def D(value: Any) -> Decimal:
    """A recorded number (string or int) as a Decimal."""
    return Decimal(str(value))


def fmt(value: Decimal, places: int | None = None) -> str:
    """A Decimal as venues print it: plain notation, optionally with fixed decimal places."""
    if places is not None:
        return f"{value:.{places}f}"
    text = f"{value:f}"
    return text
