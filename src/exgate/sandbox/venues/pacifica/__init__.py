"""Pacifica, as the sandbox serves it under ``/pacifica/api/v1/...``.

Split by concern: :mod:`.venue` (the public market-data endpoints and the venue class),
:mod:`.signing` (ed25519 over Pacifica's canonical JSON), :mod:`.account` (the unsigned
account reads: account, settings, positions, orders, order and trade history) and
:mod:`.orders` (the signed operations: create, cancel, cancel all, leverage, margin mode,
builder-code approval, agent binding). Pacifica's rate-limit answer is
:func:`exgate.sandbox.limits.pacifica_reject`.
"""

from exgate.sandbox.venues.pacifica.venue import Pacifica

__all__ = ["Pacifica"]
