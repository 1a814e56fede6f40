"""Schemathesis against the running local stack: every route of the OpenAPI document the stack
serves, with positive and negative data, with a valid API key (and, for ingestion, a valid
Standard Webhooks signature over the exact bytes sent).

Checked on every answer: no 5xx; a status the document declares; the declared content type
(every error is `application/problem+json`); a body that matches the declared schema.

A second test takes the same generated requests and breaks one part of each the way an attacker
or a broken client would, beyond what a schema describes: JSON nested up to 1,000 levels,
numbers too large for a double or with more digits than Python converts, `NaN`, lone surrogate
escapes, control and non-ASCII characters, in any body value; malformed tokens (raw non-ASCII
bytes, wrong schemes, thousands of signatures, 8 KB values) in every header the system reads;
the same kinds of values, percent-encoded or as raw invalid escapes, in every query and path
parameter. Every answer must be a 4xx problem document (or a success), never a 5xx.

The example budget per route and mode is `SM_FUZZ_EXAMPLES` (default 15 in `make test`; `make
fuzz` runs 300). It runs in an organization of its own: fuzzing creates destinations, exports
and erasures that the demo organization's tests must not see.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from success_metrics import signing
from success_metrics.console.routes import ROUTES as CONSOLE_ROUTES
from success_metrics.routes import ROUTES
from tests.e2e.conftest import RunningStack

EXAMPLES = int(os.environ.get("SM_FUZZ_EXAMPLES", "15"))
# Hostile-input tests: twice the budget, reproducible, no example database.
HOSTILE = settings(
    max_examples=EXAMPLES * 2,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
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


# ------------------------------------------------------------------ hostile input

SENTINEL = "\u0000sm-fuzz-hostile\u0000"
EVENTS_PATH = "/v1/organizations/{org_id}/events"


def nested(depth: int, kind: str) -> str:
    """JSON text nested `depth` levels (built as text: json.dumps itself recurses)."""
    if kind == "list":
        return "[" * depth + "1" + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


# JSON text put where a value of a generated body was.
hostile_values = st.one_of(
    st.builds(
        nested, st.sampled_from([33, 100, 500, 999, 1000]), st.sampled_from(["list", "dict"])
    ),
    st.sampled_from(
        [
            "1e999",
            "-1e999",
            "1" + "0" * 5000,
            "-" + "9" * 4301,
            "0." + "0" * 5000 + "1",
            "NaN",
            "Infinity",
            "-Infinity",
            "9007199254740993",
            "-0",
            "1E+308",
            "5e-324",
            '"\\ud800"',
            '"\\udfff\\ud800"',
            '"\\u0000"',
            '{"\\ud800": 1}',
            '"' + "\\u0001" * 64 + '"',
            '"' + "\u00e9" * 20_000 + '"',
            "[" + ",".join(["1"] * 50_000) + "]",
        ]
    ),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=40).map(json.dumps),
    st.text(st.characters(min_codepoint=0x80, exclude_categories=["Cs"]), min_size=1).map(
        lambda t: json.dumps(t, ensure_ascii=False)
    ),
)

# Whole bodies that are not JSON at all, or not UTF-8.
hostile_bodies = st.one_of(
    st.sampled_from([b"", b"\xff\xfe{}", b'\xef\xbb\xbf{"a": 1}', b'{"a": 1,}', b"{", b"nul"]),
    st.binary(max_size=200),
)

_HEADER_BYTES = [b for b in range(0x21, 0x100) if b != 0x7F]


def _header_value(raw: bytes) -> bytes:
    return raw.strip(b" \t")  # h11 refuses leading or trailing whitespace in a field value


header_values = st.one_of(
    st.binary(max_size=300).map(
        lambda b: bytes(_HEADER_BYTES[x % len(_HEADER_BYTES)] for x in b)
    ),  # every byte a header may legally carry, non-ASCII included
    st.sampled_from(
        [
            b"",
            b"Bearer",
            b"Bearer ",
            b"Basic dXNlcjpwYXNz",
            b"Bearer sm_live_\xff\xfe",
            b"Bearer " + b"A" * 8192,
            b"bearer  x y",
            b"v1,",
            b"v1,====",
            b"v2,abc",
            b"v1a,abc",
            b" ".join([b"v1,AAAA"] * 500),
            b"v1," + b"\xe9" * 44,
            b"1e10",
            b"-1",
            b"0x10",
            b"99999999999999999999999",
            b"\xd9\xa1\xd9\xa2",
            b"application/json; charset=\xff",
            b"application/x-www-form-urlencoded",
            b"text/plain",
            b"gzip",
            b"x" * 8192,
        ]
    ),
).map(_header_value)

# Every header a function reads (the signature headers, the key, the body's type and encoding,
# what the audit log records), and a few that proxies add.
HEADERS = (
    "authorization", "webhook-id", "webhook-timestamp", "webhook-signature", "content-type",
    "content-encoding", "user-agent", "x-forwarded-for", "cookie", "accept",
)  # fmt: skip

text_params = st.one_of(
    st.text(max_size=60).map(lambda t: quote(t, safe="")),  # any code point, percent-encoded
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=8).map(
        lambda t: quote(t, safe="")
    ),
    st.sampled_from(
        [
            "%FF%FE",
            "%00",
            "%",
            "%zz",
            "%C0%AF",
            "%ED%A0%80",
            "1e999",
            "9" * 5000,
            "-1",
            "0",
            "NaN",
            "..%2F..%2Fetc%2Fpasswd",
            "a" * 3000,
            "%E2%80%AE",
            "2026-02-30",
            "2026-13-01",
            "99999-01-01",
            "2026-01-01T25:00:00Z",
            "v1.bm90LWEtdG9rZW4.%FF",
        ]
    ),
)


def _mutate_body(body: Any, path_choice: int, value: str) -> bytes:
    """The generated body with one of its values (or the whole body) replaced by `value`."""
    slots: list[tuple[Any, Any]] = []

    def walk(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in list(items):
            slots.append((node, key))
            if isinstance(child, dict | list):
                walk(child)

    body = json.loads(json.dumps(body))  # a copy
    if isinstance(body, dict | list):
        walk(body)
    if not slots:
        return value.encode("utf-8", "surrogatepass")
    parent, key = slots[path_choice % len(slots)]
    parent[key] = SENTINEL
    text = json.dumps(body, ensure_ascii=False).replace(json.dumps(SENTINEL), value, 1)
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutations(draw: Any, route: Any) -> tuple[str, Any]:
    kinds = ["header"]
    if route.body or route.path == EVENTS_PATH:
        kinds += ["value", "value", "body"]
    if any(p.where == "query" for p in route.params):
        kinds += ["query", "query"]
    if any(p.where == "path" and p.name != "org_id" for p in route.params):
        kinds.append("path")
    kind = draw(st.sampled_from(kinds))
    if kind == "header":
        return kind, (draw(st.sampled_from(HEADERS)), draw(header_values))
    if kind == "value":
        return kind, (draw(st.integers(0, 10_000)), draw(hostile_values))
    if kind == "body":
        return kind, draw(hostile_bodies)
    where = "query" if kind == "query" else "path"
    names = [p.wire_name for p in route.params if p.where == where and p.name != "org_id"]
    return kind, (draw(st.sampled_from(names)), draw(text_params))


def send_hostile(
    stack: RunningStack,
    http: httpx.Client,
    org: dict[str, str],
    route: Any,
    case: Any,
    mutation: tuple[str, Any],
) -> httpx.Response:
    kind, detail = mutation
    kwargs = case.as_transport_kwargs(base_url=stack.api_url)
    path_params = dict(case.path_parameters or {})
    if route.path == EVENTS_PATH:
        path_params["org_id"] = org["org_id"]
    if kind == "path":
        name, value = detail
        path_params[name] = value
    path = route.path
    for name, value in path_params.items():
        raw = value if kind == "path" and name == detail[0] else quote(str(value), safe="")
        path = path.replace("{" + name + "}", raw)
    query = {k: v for k, v in (kwargs.get("params") or {}).items() if v is not None}
    pairs = [f"{quote(str(k), safe='')}={quote(str(v), safe='')}" for k, v in query.items()]
    if kind == "query":
        name, value = detail
        pairs = [p for p in pairs if not p.startswith(quote(name, safe="") + "=")]
        pairs.append(f"{quote(name, safe='')}={value}")
    url = stack.api_url + path + ("?" + "&".join(pairs) if pairs else "")

    if kind == "value":
        body = _mutate_body(case.body if "json" in kwargs else {}, *detail)
    elif kind == "body":
        body = detail
    elif "json" in kwargs:
        body = json.dumps(kwargs["json"]).encode()
    else:
        body = b""
    headers: dict[str, Any] = {"content-type": "application/json"}
    if route.path == EVENTS_PATH:
        headers.update(
            signing.sign_headers(
                org["webhook_secret"], f"msg_{uuid.uuid4().hex}", int(time.time()), body
            )
        )
    else:
        headers["authorization"] = f"Bearer {org['api_key']}"
    if kind == "header":
        name, value = detail
        headers[name] = value
    return http.request(route.method, httpx.URL(url), content=body or None, headers=headers)


def _gateway_answer(response: httpx.Response, mutation: tuple[str, Any]) -> bool:
    """API Gateway's own answers, where no function runs so no problem document can be sent
    (see docs/architecture.md): 401 for a request without the authorizer's identity source (an
    empty Authorization header), 404 for a path that no longer matches a route (an empty path
    parameter)."""
    kind, detail = mutation
    if kind == "header" and detail[0] == "authorization" and not detail[1]:
        return response.status_code == 401 and response.json() == {"message": "Unauthorized"}
    if kind == "path" and not detail[1]:
        return response.status_code == 404 and response.json() == {"message": "Not Found"}
    return False


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.path}")
def test_hostile_input_in_any_part_of_a_request_is_a_4xx_problem(
    stack: RunningStack,
    http: httpx.Client,
    schema: Any,
    fuzz_org: dict[str, str],
    route: Any,
) -> None:
    operation = schema.find_operation_by_path(route.method, route.path)
    statuses: dict[int, int] = {}

    @given(
        case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        mutation=mutations(route),
    )
    @HOSTILE
    def exercise(case: Any, mutation: tuple[str, Any]) -> None:
        response = send_hostile(stack, http, fuzz_org, route, case, mutation)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (mutation, response.status_code, response.text[:500])
        if response.status_code >= 400 and not _gateway_answer(response, mutation):
            assert response.headers["content-type"].startswith("application/problem+json"), (
                mutation,
                response.text[:500],
            )
            problem = response.json()
            assert problem["status"] == response.status_code
            assert problem["title"]
            assert problem["detail"]

    exercise()
    assert statuses, "no request was made"


# -- the console's routes ----------------------------------------------------------------------

XSS = "<script>sm-fuzz</script>"
CONSOLE_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
console_text = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(max_codepoint=0x1F), min_size=1, max_size=40),
    st.sampled_from(
        [XSS, "\u00e9" * 5000, "x" * 20_000, "1e999", "NaN", "-1", "0", "../../etc/passwd",
         "%00", "\ud7ff", "2026-02-30", "9999-99-99", "https://169.254.169.254/", "on", "true"]
    ),
)  # fmt: skip
CONSOLE_FIELDS = [
    "dataset", "format", "from", "to", "granularity", "user_type", "compression", "notify",
    "kind", "subject", "user_id", "scopes", "description", "enabled", "margin", "url", "remove",
    "metric", "currency", "op", "value", "anonymise_all", "anonymise_unknown_country", "dest_id",
    "name", "event_types", "consent", "measurement_id", "api_secret", "token", "api_key",
]  # fmt: skip
CONSOLE_QUERY = ["from", "to", "granularity", "metric", "type", "user_id", "status", "cursor",
                 "event_id", "kind", "token", "reason", "done", "breakdown"]  # fmt: skip


@pytest.fixture(scope="module")
def console_cookie(stack: RunningStack, http: httpx.Client, fuzz_org: dict[str, str]) -> str:
    signed = http.post(f"{stack.api_url}/console/sign-in", data={"api_key": fuzz_org["api_key"]})
    assert signed.status_code == 303, signed.text
    return str(signed.cookies["sm_console"])


@pytest.mark.parametrize(("method", "pattern"), sorted(CONSOLE_ROUTES), ids=str)
def test_hostile_input_to_any_console_route_is_a_page_never_a_5xx_or_a_script(
    stack: RunningStack, console_cookie: str, method: str, pattern: str
) -> None:
    with httpx.Client(
        timeout=60, follow_redirects=False, cookies={"sm_console": console_cookie}
    ) as client:
        _fuzz_console_route(stack.api_url, client, method, pattern)


def _fuzz_console_route(api_url: str, client: httpx.Client, method: str, pattern: str) -> None:
    page = client.get(f"{api_url}/console/settings")
    token = CONSOLE_CSRF.search(page.text)
    assert token, page.text[:300]
    statuses: dict[int, int] = {}

    @given(
        params=st.dictionaries(
            st.sampled_from(
                ["dest_id", "export_id", "delivery_id", "erasure_id", "key_id", "name"]
            ),
            console_text,
        ),
        query=st.dictionaries(st.sampled_from(CONSOLE_QUERY), console_text, max_size=4),
        form=st.dictionaries(st.sampled_from(CONSOLE_FIELDS), console_text, max_size=8),
        raw=st.one_of(st.none(), hostile_bodies),
        with_csrf=st.booleans(),
    )
    @HOSTILE
    def exercise(
        params: dict[str, str],
        query: dict[str, str],
        form: dict[str, str],
        raw: bytes | None,
        with_csrf: bool,
    ) -> None:
        values = {
            name: quote(params.get(name) or "x", safe="")
            for name in re.findall(r"{(\w+)}", pattern)
        }
        url = f"{api_url}{pattern.format(**values)}"
        if method == "GET":
            response = client.get(url, params=query)
        elif raw is not None:
            response = client.post(
                url,
                content=raw,
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
        else:
            data = {**form, **({"csrf": token[1]} if with_csrf else {})}
            response = client.post(url, params=query, data=data)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (url, form, response.status_code, response.text[:500])
        assert XSS not in response.text, (url, form)
        if response.headers.get("content-type", "").startswith("text/html"):
            policy = response.headers["content-security-policy"]
            assert "default-src 'none'" in policy
            assert "'unsafe-inline'" not in policy

    exercise()
    assert statuses, "no request was made"
