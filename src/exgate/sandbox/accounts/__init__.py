"""Sandbox accounts: funded accounts with credentials, a ledger per account (positions, margin,
PnL, fills) and each venue's :class:`AccountDesk`, through which its private REST handlers
place and cancel orders on the venue's matching engine."""

from exgate.sandbox.accounts.desk import DEFAULT_HISTORY_LAG_MS, AccountDesk, OrderFault
from exgate.sandbox.accounts.keys import hmac_credentials
from exgate.sandbox.accounts.ledger import (AccountFill, MarginMode, PositionState, PositionView, SandboxAccount,
                                            Summary)

__all__ = ["AccountDesk", "AccountFill", "DEFAULT_HISTORY_LAG_MS", "MarginMode", "OrderFault", "PositionState",
           "PositionView", "SandboxAccount", "Summary", "hmac_credentials"]
