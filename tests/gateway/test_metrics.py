"""GET /metrics of the in-process gateway: request latency per route template, method and status class."""

from prometheus_client.parser import text_string_to_metric_families

from tests.credentials import auth_headers


async def _samples(api) -> dict[tuple[str, frozenset], float]:
    resp = await api.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def _count(samples, route: str, method: str, status_class: str) -> float:
    key = ("twin_http_request_duration_seconds_count",
           frozenset({"route": route, "method": method, "status_class": status_class}.items()))
    return samples.get(key, 0.0)


async def test_requests_are_timed_by_route_template_not_raw_path(api, tenant):
    session_route = "/api/interviews/session/{session_id}"
    before = await _samples(api)
    for i in range(3):
        resp = await api.get(f"/api/interviews/session/missing-{i}", headers=auth_headers(tenant))
        assert resp.status_code == 404
    assert (await api.get("/healthz")).status_code == 200
    assert (await api.get("/no/such/path/x1")).status_code == 404
    assert (await api.get("/no/such/path/x2")).status_code == 404
    after = await _samples(api)

    assert _count(after, session_route, "GET", "4xx") - _count(before, session_route, "GET", "4xx") == 3
    assert _count(after, "/healthz", "GET", "2xx") - _count(before, "/healthz", "GET", "2xx") == 1
    # Unknown URLs share one series: a scanner cannot blow up the number of series.
    assert _count(after, "unmatched", "GET", "4xx") - _count(before, "unmatched", "GET", "4xx") == 2
    routes = {dict(labels)["route"] for name, labels in after if name == "twin_http_request_duration_seconds_count"}
    assert not any("missing-" in r or "/no/such" in r for r in routes)
