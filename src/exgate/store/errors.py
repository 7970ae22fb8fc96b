"""Errors of the SQL store, leaves of :class:`exgate.errors.ExgateError` (status = HTTP status)."""

from __future__ import annotations

from exgate.errors import ExgateError


class NotFound(ExgateError):
    """A row the call names does not exist for this tenant and user (or an exchange id is not
    seeded); ``extra['field']`` names the field that pointed at nothing."""

    status = 404
    title = "Not found"


class Conflict(ExgateError):
    """The write would break a uniqueness rule (tenant name, one connection per exchange, one
    primary per user); ``extra['field']`` names the field in conflict."""

    status = 409
    title = "Conflict"


class SecretsUnavailable(ExgateError):
    """Credentials cannot be encrypted or decrypted: ``EXGATE_SECRET_KEYS`` is not set."""

    status = 503
    title = "Credential store unavailable"

    def __init__(self, detail: str = "EXGATE_SECRET_KEYS is not set: credentials cannot be stored or read"
                 " (set it to one or more comma-separated Fernet keys)", **extra: object) -> None:
        super().__init__(detail, **extra)
