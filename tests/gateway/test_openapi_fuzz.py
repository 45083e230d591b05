"""Property-based run of every operation in the gateway's OpenAPI schema (schemathesis + hypothesis)
against a real gateway process on the real stack: whatever the input, no 500, and every error
answers in the shared shape ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.credentials import auth_headers

EXAMPLES_PER_OPERATION = 50  # about 3300 calls over 36 operations, 40 s on 2 cores


@pytest.fixture(scope="module")
def gateway_url(gateway_factory, tmp_path_factory):
    _, url = gateway_factory("gateway-fuzz", extra_env={
        "OBJECT_STORE_URL": tmp_path_factory.mktemp("objects-fuzz").as_uri()})
    return url


def _check(response, case) -> None:
    where = f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    assert response.status_code != 500, where
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), where
        assert isinstance(body["error"]["code"], str) and body["error"]["code"], where


def test_no_operation_answers_500_whatever_it_is_sent(gateway_url):
    schema = schemathesis.openapi.from_url(f"{gateway_url}/openapi.json")
    tenant = f"t-fuzz-{uuid.uuid4().hex[:8]}"
    credentials = [auth_headers(tenant), {}]  # with every scope, and with none
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    calls = {"n": 0}
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            for headers in credentials:
                # A generated Authorization header would only test the 401 path: ours replaces it.
                sent = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization",
                                                                                           "x-tenant-id")}
                response = case.call(base_url=gateway_url, headers={**sent, **headers}, timeout=30)
                calls["n"] += 1
                _check(response, case)

        run()
    print(f"{calls['n']} calls over {len(operations)} operations")
    assert calls["n"] >= len(operations) * 2
