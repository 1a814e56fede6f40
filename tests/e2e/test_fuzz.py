"""Schemathesis against the running local stack: every route of the OpenAPI document the stack
serves, with positive and negative data, with a valid API key (and, for ingestion, a valid
Standard Webhooks signature over the exact bytes sent).

Checked on every answer: no 5xx; a status the document declares; the declared content type
(every error is `application/problem+json`); a body that matches the declared schema.

The example budget per route and mode is `SM_FUZZ_EXAMPLES` (default 15 in `make test`; `make
fuzz` runs 300). It runs in an organization of its own: fuzzing creates destinations, exports
and erasures that the demo organization's tests must not see.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from success_metrics import signing
from success_metrics.routes import ROUTES
from tests.e2e.conftest import RunningStack

EXAMPLES = int(os.environ.get("SM_FUZZ_EXAMPLES", "15"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzz_org(stack: RunningStack) -> dict[str, str]:
    created: dict[str, str] = stack.smctl_json("org", "create", f"Fuzz {uuid.uuid4().hex[:6]}")
    stack.smctl(
        "org", "set-limits", created["org_id"],
        "--requests-per-hour", "1000000", "--events-per-hour", "100000000",
    )  # fmt: skip
    return created


@pytest.fixture(scope="module")
def schema(stack: RunningStack) -> Any:
    served = httpx.get(f"{stack.api_url}/v1/openapi.json", timeout=30)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    return schemathesis.openapi.from_dict(served.json())


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60, follow_redirects=False) as client:
        yield client


def send(stack: RunningStack, http: httpx.Client, org: dict[str, str], case: Any) -> httpx.Response:
    """The case as a request, with the fuzz organization's credentials."""
    kwargs = case.as_transport_kwargs(base_url=stack.api_url)
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()}
    url = kwargs["url"]
    if case.operation.path == "/v1/organizations/{org_id}/events":
        # Mostly sign as the fuzz organization (the org id in the path is replaced), so the
        # body reaches validation; the generated headers are used as they are otherwise.
        body = json.dumps(case.body).encode() if "json" in kwargs else b""
        if not case.path_parameters or hash(str(case.path_parameters)) % 4:
            url = f"{stack.api_url}/v1/organizations/{org['org_id']}/events"
            signed = signing.sign_headers(
                org["webhook_secret"], f"msg_{uuid.uuid4().hex}", int(time.time()), body
            )
            headers.update(signed)
        headers["content-type"] = "application/json"
        return http.request(case.method, url, content=body, headers=headers)
    headers["Authorization"] = f"Bearer {org['api_key']}"
    request: dict[str, Any] = {"headers": headers, "params": kwargs.get("params")}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    return http.request(case.method, url, **request)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_route_answers_within_its_contract(
    stack: RunningStack,
    http: httpx.Client,
    schema: Any,
    fuzz_org: dict[str, str],
    route: Any,
    mode: GenerationMode,
) -> None:
    if mode is GenerationMode.NEGATIVE and not (route.params or route.body):
        pytest.skip("nothing to send that the document forbids: no parameters, no body")
    operation = schema.find_operation_by_path(route.method, route.path)
    statuses: dict[int, int] = {}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def exercise(case: Any) -> None:
        response = send(stack, http, fuzz_org, case)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith("application/problem+json")
            problem = response.json()
            assert problem["status"] == response.status_code
            assert problem["title"]
        case.validate_response(response, checks=CHECKS)

    exercise()
    assert statuses, "no request was made"
