"""exgate: one gateway between application backends and crypto exchanges.

Public surface: the normalized models (:mod:`exgate.models`), the error tree
(:mod:`exgate.errors`), the adapter interface (:mod:`exgate.venues`), the cache
(:mod:`exgate.cache`), the HTTP app factory (:func:`exgate.http.app.create_app`) and the
sandbox (:func:`exgate.sandbox.app.create_sandbox_app`).
"""

__version__ = "0.1.0"

from exgate.logs import configure_default_logging

configure_default_logging()
