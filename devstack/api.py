"""A local API Gateway HTTP API: every `HttpApi` event of the template becomes a route.

Requests become payload-2.0 events (lower-cased headers, path parameters, base64 bodies when
binary, `requestContext` with request id and authorizer context); Lambda authorizers run first,
with result caching on their identity sources, as API Gateway does.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from devstack.functions import LocalFunction
from devstack.lambda_events import ACCOUNT, REGION, authorizer_event, http_event
from devstack.terminal import QuietHTTPServer

MAX_BODY = 10 * 1024 * 1024  # API Gateway HTTP API payload limit


@dataclass
class Authorizer:
    name: str
    function: LocalFunction
    identity_headers: list[str]
    ttl: int
    simple: bool
    _cache: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def authorize(self, route_arn: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(status, context): 200 with the context, or API Gateway's own 401/403/500."""
        identity = tuple(headers.get(h.lower(), "") for h in self.identity_headers)
        if self.identity_headers and not all(identity):
            return 401, {}
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(identity)
        if cached is not None and cached[0] > now:
            result = cached[1]
        else:
            try:
                result = self.function.invoke(authorizer_event(route_arn, headers, list(identity)))
            except Exception:
                return 500, {}
            if self.ttl > 0 and self.identity_headers:
                with self._lock:
                    self._cache[identity] = (now + self.ttl, result)
        if not self.simple:
            raise NotImplementedError("only simple-response authorizers are emulated")
        if not result.get("isAuthorized"):
            return 403, {}
        return 200, dict(result.get("context") or {})


@dataclass
class Route:
    method: str
    path: str
    function: LocalFunction
    authorizer: Authorizer | None
    pattern: re.Pattern[str]
    params: list[str]
    literal_segments: int
    greedy: bool

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"


def compile_route(
    method: str, path: str, function: LocalFunction, authorizer: Authorizer | None
) -> Route:
    parts, params, literal, greedy = [], [], 0, False
    for segment in path.strip("/").split("/"):
        match = re.fullmatch(r"\{([A-Za-z0-9_]+)(\+?)\}", segment)
        if match:
            params.append(match.group(1))
            greedy = greedy or bool(match.group(2))
            parts.append(
                f"(?P<{match.group(1)}>.+)" if match.group(2) else f"(?P<{match.group(1)}>[^/]+)"
            )
        else:
            literal += 1
            parts.append(re.escape(segment))
    # A trailing slash is part of the route, as on API Gateway: /console/ is not /console.
    slash = "/" if path.endswith("/") and path != "/" else ""
    pattern = re.compile("^/" + "/".join(parts) + slash + "$") if path != "/" else re.compile("^/$")
    return Route(method.upper(), path, function, authorizer, pattern, params, literal, greedy)


class HttpApi:
    def __init__(self, routes: list[Route], api_id: str = "local") -> None:
        # API Gateway prefers the most specific route: more literal segments, no greedy path,
        # an exact method over ANY.
        self.routes = sorted(
            routes, key=lambda r: (-r.literal_segments, r.greedy, r.method == "ANY")
        )
        self.api_id = api_id
        self.control: dict[str, Callable[[str, bytes], tuple[int, Any]]] = {}

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        for route in self.routes:
            if route.method not in (method, "ANY"):
                continue
            found = route.pattern.match(path)
            if found:
                return route, {k: v for k, v in found.groupdict().items() if v is not None}
        return None

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict[str, str], bytes]:
        split = urlsplit(target)
        path = split.path or "/"
        request_id = base64.b32encode(time.time_ns().to_bytes(8, "big")).decode().rstrip("=")
        base_headers = {"apigw-requestid": request_id}
        for prefix, control in self.control.items():
            if path.startswith(prefix):
                status, payload = control(path[len(prefix) :], body)
                return (
                    status,
                    {**base_headers, "content-type": "application/json"},
                    json.dumps(payload).encode(),
                )
        matched = self.match(method, path)
        if matched is None:
            return _gateway(404, "Not Found", base_headers)
        route, params = matched
        lowered = {k.lower(): v for k, v in headers.items()}
        context = None
        if route.authorizer is not None:
            arn = f"arn:aws:execute-api:{REGION}:{ACCOUNT}:{self.api_id}/$default/{method}{path}"
            status, context = route.authorizer.authorize(arn, lowered)
            if status == 401:
                return _gateway(401, "Unauthorized", base_headers)
            if status == 403:
                return _gateway(403, "Forbidden", base_headers)
            if status != 200:
                return _gateway(500, "Internal Server Error", base_headers)
        event = http_event(
            method,
            path,
            route_key=route.route_key,
            path_parameters=params or None,
            # API Gateway sets it to the scheme the client used (https on AWS).
            headers={**headers, "x-forwarded-proto": "http"},
            raw_query=split.query,
            body=body,
            authorizer=context,
            source_ip=source_ip,
            api_id=self.api_id,
        )
        event["requestContext"]["requestId"] = request_id
        try:
            result = route.function.invoke(event)
        except Exception as exc:
            print(f"[devstack] {route.function.name} failed: {type(exc).__name__}: {exc}")
            return _gateway(500, "Internal Server Error", base_headers)
        return _response(result, base_headers)


def _gateway(
    status: int, message: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {**headers, "content-type": "application/json"},
        json.dumps({"message": message}).encode(),
    )


def _response(result: Any, base: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Payload 2.0 response mapping, including the 'no statusCode' shorthand."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return 200, {**base, "content-type": "application/json"}, json.dumps(result).encode()
    headers = {**base, **{k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}}
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ",".join(str(v) for v in values)
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode("utf-8")
    if result.get("cookies"):
        headers["set-cookie"] = "\n".join(result["cookies"])
    return int(result["statusCode"]), headers, raw


def serve(api: HttpApi, host: str, port: int) -> QuietHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # One write per answer: headers and body sent apart meet the peer's delayed ACK (40 ms).
        wbufsize = 64 * 1024
        server_version = "devstack-http-api"

        def _any(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self._send(*_gateway(413, "Request Entity Too Large", {}), close=True)
                return
            body = self.rfile.read(length) if length else b""
            headers: dict[str, str] = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = f"{headers[key]},{value}" if key in headers else value
            self._send(*api.handle(self.command, self.path, headers, body, self.client_address[0]))

        def _send(
            self, status: int, headers: dict[str, str], body: bytes, close: bool = False
        ) -> None:
            self.send_response(status)
            for name, value in headers.items():
                for line in value.split("\n") if name == "set-cookie" else [value]:
                    self.send_header(name, line)
            self.send_header("content-length", str(len(body)))
            if close:
                self.send_header("connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _any

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = QuietHTTPServer((host, port), Handler)
    server.name = "HTTP API"
    threading.Thread(target=server.serve_forever, name="http-api", daemon=True).start()
    return server
