"""The route table is the API: it matches the template, every function's resolver, and the
committed OpenAPI document (regenerate it with `make openapi`)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pytest

from devstack.template import functions, load
from success_metrics import openapi
from success_metrics.console.routes import ROUTES as CONSOLE_ROUTES
from success_metrics.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]


def template_routes() -> dict[tuple[str, str], tuple[str, bool]]:
    """{(method, path): (function, behind the API-key authorizer)} from template.yaml."""
    found = {}
    for function in functions(load()):
        for spec in function.events_of("HttpApi").values():
            authorizer = (spec.get("Auth") or {}).get("Authorizer")
            found[(spec["Method"].upper(), spec["Path"])] = (
                function.logical_id,
                authorizer == "ApiKeyAuthorizer",
            )
    return found


def test_the_route_table_is_exactly_the_templates_routes() -> None:
    table = {(r.method, r.path): (r.function, r.auth == "api_key") for r in ROUTES}
    api = {k: v for k, v in template_routes().items() if not k[1].startswith("/console")}
    assert table == api
    assert len(table) == len(ROUTES)  # no route twice


def test_the_console_serves_exactly_its_template_routes_without_the_api_key_authorizer() -> None:
    console = {k: v for k, v in template_routes().items() if k[1].startswith("/console")}
    assert console == dict.fromkeys(CONSOLE_ROUTES, ("ConsoleFunction", False))


@pytest.mark.parametrize(
    "function", sorted({r.function for r in ROUTES}), ids=lambda f: f.removesuffix("Function")
)
def test_each_functions_resolver_serves_exactly_its_routes(function: str) -> None:
    [spec] = [f for f in functions(load()) if f.logical_id == function]
    module: Any = importlib.import_module(f"{Path(spec.code_uri).name}.app")
    app = module.app
    served = {(r.method, r.path) for r in app._static_routes + app._dynamic_routes}
    expected = {
        (r.method, r.path.replace("{", "<").replace("}", ">"))
        for r in ROUTES
        if r.function == function
    }
    assert served == expected


def test_the_committed_openapi_document_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == openapi.document_json(), "run `make openapi` and commit docs/openapi.json"


def test_the_document_describes_every_route_and_every_error_as_a_problem() -> None:
    doc = openapi.document()
    assert doc["openapi"].startswith("3.1")
    for route in ROUTES:
        operation = doc["paths"][route.path][route.method.lower()]
        assert operation["operationId"] == route.operation_id
        assert str(route.status) in operation["responses"]
        for status in route.errors:
            content = operation["responses"][str(status)]["content"]
            assert content["application/problem+json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }
        assert "422" not in operation["responses"]  # this API answers 400 problem documents
        if route.auth == "api_key":
            assert operation["security"] == [{"apiKey": []}]
        if route.body:
            assert operation["requestBody"]["required"] is True
    names = {p["name"] for p in doc["paths"]["/v1/metrics"]["get"]["parameters"]}
    assert {"from", "to", "granularity"} <= names
    json.dumps(doc)  # plain JSON
