"""schemathesis hooks of :mod:`tests.test_openapi_fuzz` (loaded through ``SCHEMATHESIS_HOOKS``).

Some 422s answer schema-valid requests on purpose, because OpenAPI cannot say what the
gateway checks: ``depth``/``limit`` bounds and ``interval`` values depend on the venue in the
path (the document gives the widest bound and the union of intervals), ``start`` must not be
after ``end``, and ``DELETE /v1/cache`` needs at least one ``key`` or ``tag``. For those operations ``positive_data_acceptance`` also
accepts 422 (see the test's config), and this check makes sure each such 422 is exactly that
venue rule, not any other rejection.
"""

from __future__ import annotations

import os

import schemathesis

_VENUE_BOUNDED = {"depth", "limit", "interval"}


def _outside(value: str, allowed: object) -> bool:
    if isinstance(allowed, list):
        return value not in allowed
    if isinstance(allowed, dict):
        number = int(value)
        return not allowed.get("min", number) <= number <= allowed.get("max", number)
    return False


_PRIVATE = ("/v1/connections", "/v1/account", "/v1/orders")
TENANT_KEY = os.environ.get("EXGATE_FUZZ_TENANT_KEY", "")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Private routes get the fuzz tenant's key (the operator token is not one), so they are
    fuzzed past their 401: a valid tenant, and whatever X-User-Id schemathesis makes up."""
    if TENANT_KEY and case.path.startswith(_PRIVATE):
        headers = dict(case.headers or {})
        if "authorization" not in {k.lower() for k in headers} or headers.get("Authorization", "").endswith(
                os.environ.get("EXGATE_FUZZ_ADMIN_TOKEN", "\x00")):
            headers["Authorization"] = f"Bearer {TENANT_KEY}"
        case.headers = headers


@schemathesis.check
def venue_rule_422(ctx, response, case):
    """A 422 to a schema-valid request names a venue-bounded field and a value outside what
    that venue allows (``allowed``), or ``start`` after ``end``, or is a ``DELETE /v1/cache``
    with no key and no tag."""
    meta = case.meta
    if response.status_code != 422 or meta is None or not meta.generation.mode.is_positive:
        return None
    body = response.json()
    query = case.query or {}
    if case.path == "/v1/connections" and case.method.upper() == "POST":  # exchange served? credentials the venue takes?
        assert body.get("field") in ("exchange", "account_id") or "venue_error" in body, \
            f"schema-valid connection rejected: {body}"
        return None
    if case.method.upper() == "DELETE" and case.path == "/v1/cache":
        given = [v for name in ("key", "tag") for v in _as_list(query.get(name)) if v.strip(",")]
        assert not given, f"422 with key/tag given: {body}"
        return None
    field = body.get("field")
    if field == "start" and "end" in query and "start" in query:  # start after end: a rule across two fields
        assert int(query["start"]) > int(query["end"]), f"422 for start <= end: {body}"
        return None
    assert field in _VENUE_BOUNDED, f"schema-valid request rejected on {field!r}: {body}"
    values = _as_list(query.get(field))
    assert values and _outside(str(values[0]), body.get("allowed")), f"422 for an allowed {field}: {body}"
    return None


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]
