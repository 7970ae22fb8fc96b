"""The client stream's resume cursor: an opaque text naming, for every stream a client follows,
the id of the last event delivered (``"c1." + base64url(JSON {"venue:kind": "<ms>-<seq>"})``).

Opaque to clients: they store the ``cursor`` of the last event frame and send it back as
``last_id`` (WebSocket ``resume``, SSE ``last_id`` / ``Last-Event-ID``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Final

import orjson

from exgate.bus.events import STREAM_PREFIX, parse_id, split_stream_key, stream_key

_VERSION: Final = "c1."
MAX_CURSOR_LENGTH: Final = 8_192


class CursorError(ValueError):
    """A cursor exgate did not make (or a damaged one)."""


def encode_cursor(positions: dict[str, str]) -> str:
    """The cursor of ``positions`` (stream key → last delivered id)."""
    compact = {key[len(STREAM_PREFIX):]: last for key, last in sorted(positions.items())}
    return _VERSION + base64.urlsafe_b64encode(orjson.dumps(compact)).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, str]:
    """``{stream key: last id}`` of a cursor made by :func:`encode_cursor`.

    Raises:
        CursorError: not such a cursor (wrong prefix, not base64, not the JSON, a bad stream
            or id), or longer than 8,192 characters.
    """
    if not isinstance(cursor, str) or not cursor.startswith(_VERSION) or len(cursor) > MAX_CURSOR_LENGTH:
        raise CursorError("last_id: not a cursor of this gateway (send back the `cursor` of the last event frame)")
    body = cursor[len(_VERSION):]
    try:
        compact = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        if not isinstance(compact, dict):
            raise ValueError("not an object")
        out: dict[str, str] = {}
        for name, last in compact.items():
            venue, _, kind = str(name).rpartition(":")
            key = stream_key(venue, kind)
            split_stream_key(key)
            parse_id(last)
            out[key] = last
        return out
    except (binascii.Error, ValueError, TypeError) as exc:
        raise CursorError(f"last_id: damaged cursor ({exc})") from None
