"""Upstream budgets: exchange rate limits kept once for every instance, with a priority queue."""

from exgate.budget.gate import BudgetGate
from exgate.budget.model import Limit, Metering, Priority, Scope, current_priority, set_priority
from exgate.budget.store import Grant, MemoryBudgetStore, RedisBudgetStore

__all__ = ["BudgetGate", "Grant", "Limit", "MemoryBudgetStore", "Metering", "Priority", "RedisBudgetStore", "Scope",
           "current_priority", "set_priority"]
