"""The sink's HTTP server: routes each request to its platform's fake, records it,
applies faults."""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from devstack.sink.common import (
    MAX_RECORDED,
    MAX_REQUEST_BYTES,
    _basic_auth_username,
    _body_fields,
    _inflate,
    _json,
    _mixpanel_error,
    _Response,
    _text,
    _TooLarge,
    log,
)
from devstack.sink.faults import Fault, _fault_response, _FaultState
from devstack.sink.ga4 import (
    GOOGLE_DELETION_PATH,
    GOOGLE_ID_TYPES,
    _Messages,
    _msg,
    ga4_validation_messages,
)
from devstack.sink.mixpanel import (
    MIXPANEL_GDPR_MAX_IDS,
    MIXPANEL_MAX_BYTES,
    MIXPANEL_MAX_EVENTS,
    _insert_id_of,
    _parse_mixpanel_body,
    mixpanel_record_error,
)
from devstack.sink.slack import SLACK_MIN_INTERVAL_S, slack_payload_error
from devstack.terminal import QuietHTTPServer


def _route(path: str) -> str:
    if path in ("/import", "/track"):
        return "mixpanel"
    if path.rstrip("/") == "/api/app/data-deletions/v3.0":
        return "mixpanel_gdpr"
    if path == "/token":
        return "google_oauth"
    if path == GOOGLE_DELETION_PATH:
        return "ga4_user_deletion"
    if path == "/mp/collect":
        return "ga4"
    if path == "/debug/mp/collect":
        return "ga4_debug"
    if path.startswith("/services/"):
        return "slack"
    return "webhook"


class _Server(QuietHTTPServer):
    allow_reuse_address = True
    name = "sink"
    sink: Sink


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per answer: headers and body sent apart meet the peer's delayed ACK (40 ms).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.sink._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.sink._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("sink: " + format, *args)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _read_body(self) -> bytes | None:
        """The raw request body, or None when it is over MAX_REQUEST_BYTES."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_REQUEST_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_REQUEST_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _handle(self) -> None:
        sink = self.server.sink
        split = urlsplit(self.path)
        path = split.path or "/"
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raw = self._read_body()
        if raw is None:
            self.close_connection = True
            self._send(_text(413, "request body too large for the sink"))
            return
        if path == "/_sink" or path.startswith("/_sink/"):
            self._send(sink._control(self.command, path, query, raw))
            return
        platform = _route(path)
        try:
            body = _inflate(raw, headers.get("content-encoding", ""), MAX_REQUEST_BYTES)
            decode_error: str | None = None
        except _TooLarge:
            body, decode_error = raw, "too_large"
        except ValueError as exc:
            body, decode_error = raw, str(exc)
        record = {
            "method": self.command,
            "path": path,
            "query": query,
            "headers": headers,
            "platform": platform,
            **_body_fields(body),
        }
        if decode_error:
            record["decode_error"] = decode_error
        fault = sink._fault_hit(path)
        if fault is not None:
            if fault.latency_ms:
                sink._sleep(fault.latency_ms / 1000)
            if fault.timeout:
                sink._record({**record, "status": None, "fault": True})
                self.close_connection = True
                return
            if fault.status is not None:
                response = _fault_response(fault, platform)
                sink._record(
                    {
                        **record,
                        "status": response.status,
                        "fault": True,
                        "response": response.body.decode(errors="replace"),
                    }
                )
                self._send(response)
                return
        if decode_error:
            response = _decode_error_response(platform, decode_error)
        else:
            response = sink._dispatch(platform, self.command, path, query, headers, body)
        sink._record(
            {
                **record,
                **response.extra,
                "status": response.status,
                "fault": False,
                "response": response.body.decode(errors="replace"),
            }
        )
        self._send(response)

    def _send(self, response: _Response) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if response.status != 204:
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.status != 204 and response.body:
            self.wfile.write(response.body)


def _decode_error_response(platform: str, error: str) -> _Response:
    too_large = error == "too_large"
    if platform == "mixpanel":
        if too_large:
            return _mixpanel_error(413, f"request exceeds max limit of {MIXPANEL_MAX_BYTES} bytes")
        return _mixpanel_error(400, f"unable to decode request body: {error}")
    if platform == "slack":
        return _text(400, "invalid_payload")
    if platform == "ga4":
        return _Response(204)
    if platform == "ga4_debug":
        out: _Messages = []
        _msg(out, "", f"Unable to decode the request body: {error}", "VALUE_INVALID")
        return _json(200, {"validationMessages": out})
    return _json(413 if too_large else 400, {"error": error})


class Sink:
    """The destination sink: start() it, point the destinations at `url`, read `requests()`."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, max_recorded: int = MAX_RECORDED
    ) -> None:
        self.host = host
        self.port = port
        # Tunable limits (defaults are the platforms' documented ones).
        self.mixpanel_max_events = MIXPANEL_MAX_EVENTS
        self.mixpanel_max_bytes = MIXPANEL_MAX_BYTES
        self.slack_min_interval_s: float | None = SLACK_MIN_INTERVAL_S
        self._lock = threading.Lock()
        self._records: deque[dict[str, Any]] = deque(maxlen=max_recorded)
        self._next_id = 1
        self._fault: _FaultState | None = None
        self._insert_ids: dict[tuple[str, str], int] = {}
        self._slack_last: dict[str, float] = {}
        self._google_tokens: set[str] = set()
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sink is not started")
        host, port = self._server.server_address[:2]
        host = host if isinstance(host, str) else host.decode()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{port}"

    def start(self) -> None:
        if self._server is not None:
            return
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.sink = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="sink", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=1)
        self._server = self._thread = None

    def __enter__(self) -> Sink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # recorded requests

    def requests(
        self, path_prefix: str | None = None, platform: str | None = None
    ) -> list[dict[str, Any]]:
        """Copies of the recorded requests, oldest first, optionally filtered."""
        with self._lock:
            records = list(self._records)
        return [
            dict(r)
            for r in records
            if (path_prefix is None or r["path"].startswith(path_prefix))
            and (platform is None or r["platform"] == platform)
        ]

    def clear(self) -> None:
        """Forget recorded requests, Mixpanel insert ids and Slack rate-limit state."""
        with self._lock:
            self._records.clear()
            self._insert_ids.clear()
            self._slack_last.clear()

    def mixpanel_insert_ids(self, project: str | None = None) -> dict[str, int]:
        """$insert_id -> times an event with it was imported (all projects, or one project).

        Mixpanel deduplicates on ($insert_id, distinct_id, event, time) at query time, so a count
        above one is a retry the real service would have collapsed.
        """
        counts: dict[str, int] = {}
        with self._lock:
            for (proj, insert_id), n in self._insert_ids.items():
                if project is None or proj == project:
                    counts[insert_id] = counts.get(insert_id, 0) + n
        return counts

    # faults

    def set_fault(self, fault: Fault | None) -> None:
        with self._lock:
            self._fault = _FaultState(fault) if fault is not None else None

    def fault(self) -> dict[str, Any] | None:
        with self._lock:
            return self._fault.describe() if self._fault else None

    # internals used by the handler

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _fault_hit(self, path: str) -> Fault | None:
        with self._lock:
            if self._fault is not None and self._fault.hit(path):
                fault = self._fault.fault
                if fault.choices:
                    choice = self._fault.rng.choice(fault.choices)
                    timeout = choice == "timeout"
                    return replace(fault, status=None if timeout else int(choice), timeout=timeout)
                return fault
        return None

    def _record(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append({"id": self._next_id, "time": time.time(), **record})
            self._next_id += 1

    def _dispatch(
        self,
        platform: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Response:
        if platform == "webhook":
            return _json(200, {"received": True})
        if method != "POST":
            return _Response(405, b"", "text/plain", {"Allow": "POST"})
        handlers: dict[str, Callable[[str, dict[str, str], dict[str, str], bytes], _Response]] = {
            "mixpanel": self._mixpanel,
            "ga4": self._ga4,
            "ga4_debug": self._ga4,
            "slack": self._slack,
            "mixpanel_gdpr": self._mixpanel_gdpr,
            "google_oauth": self._google_oauth,
            "ga4_user_deletion": self._ga4_user_deletion,
        }
        return handlers[platform](path, query, headers, body)

    def _mixpanel(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        if path == "/track":
            return self._mixpanel_track(query, headers, body)
        username = _basic_auth_username(headers.get("authorization"))
        if username is None:
            return _mixpanel_error(401, "Invalid credentials")
        if len(body) > self.mixpanel_max_bytes:
            return _mixpanel_error(
                413, f"request exceeds max limit of {self.mixpanel_max_bytes} bytes"
            )
        try:
            records = _parse_mixpanel_body(body, headers.get("content-type", ""))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return _mixpanel_error(400, f"unable to parse request body as JSON: {exc}")
        if len(records) > self.mixpanel_max_events:
            return _mixpanel_error(
                413, f"request exceeds max limit of {self.mixpanel_max_events} events"
            )
        project = query.get("project_id") or username
        failed: list[dict[str, Any]] = []
        imported: list[Any] = []
        now = time.time()
        for index, record in enumerate(records):
            error = mixpanel_record_error(record, now) if query.get("strict") == "1" else None
            if error is None:
                imported.append(record)
            else:
                failed.append(
                    {
                        "index": index,
                        "insert_id": _insert_id_of(record),
                        "field": error[0],
                        "message": error[1],
                    }
                )
        self._count_insert_ids(project, imported)
        extra = {"project": project, "num_records_imported": len(imported)}
        if failed:
            response = _mixpanel_error(
                400,
                "some data points in the request failed validation",
                num_records_imported=len(imported),
                failed_records=failed,
            )
        else:
            response = _json(200, {"code": 200, "num_records_imported": len(imported), "status": 1})
        response.extra = extra
        return response

    def _mixpanel_track(
        self, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        verbose = query.get("verbose") == "1"
        try:
            text = body.decode()
            if "application/x-www-form-urlencoded" in headers.get("content-type", "").lower():
                text = dict(parse_qsl(text)).get("data", "")
                if not text.lstrip().startswith(("[", "{")):
                    text = base64.b64decode(text).decode()
            data = json.loads(text)
        except (UnicodeDecodeError, ValueError) as exc:
            if verbose:
                return _json(200, {"status": 0, "error": f"unable to parse data: {exc}"})
            return _text(200, "0")
        records = data if isinstance(data, list) else [data]
        token = ""
        if records and isinstance(records[0], dict):
            token = str((records[0].get("properties") or {}).get("token", ""))
        self._count_insert_ids(token, records)
        if verbose:
            return _json(200, {"status": 1, "error": None})
        return _text(200, "1")

    def _count_insert_ids(self, project: str, records: list[Any]) -> None:
        with self._lock:
            for record in records:
                insert_id = _insert_id_of(record)
                if insert_id:
                    key = (project, insert_id)
                    self._insert_ids[key] = self._insert_ids.get(key, 0) + 1

    def _ga4(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        messages = ga4_validation_messages(body, query)
        if path == "/mp/collect":
            return _Response(204, extra={"validation": messages})
        response = _json(200, {"validationMessages": messages})
        response.extra = {"validation": messages}
        return response

    def _mixpanel_gdpr(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        def error(status: int, message: str) -> _Response:
            return _json(status, {"status": "error", "error": message})

        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return error(401, "a GDPR OAuth token is required (Authorization: Bearer ...)")
        if not query.get("token"):
            return error(400, "the token query parameter (project token) is required")
        try:
            payload = json.loads(body)
        except ValueError:
            return error(400, "the body must be JSON")
        ids = payload.get("distinct_ids") if isinstance(payload, dict) else None
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MIXPANEL_GDPR_MAX_IDS
            or not all(isinstance(i, str) and i for i in ids)
        ):
            return error(400, f"distinct_ids must be 1 to {MIXPANEL_GDPR_MAX_IDS} strings")
        if payload.get("compliance_type", "GDPR") not in ("GDPR", "CCPA"):
            return error(400, "compliance_type must be GDPR or CCPA")
        task = f"{random.getrandbits(64):016x}"
        response = _json(200, {"status": "ok", "results": {"task_id": task}})
        response.extra = {"deletion": {"distinct_ids": ids, "task_id": task}}
        return response

    def _google_oauth(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "refresh_token":
            return _json(400, {"error": "unsupported_grant_type"})
        missing = [n for n in ("client_id", "client_secret", "refresh_token") if not form.get(n)]
        if missing:
            return _json(
                400, {"error": "invalid_request", "error_description": f"missing {missing[0]}"}
            )
        token = f"ya29.sink-{random.getrandbits(64):016x}"
        with self._lock:
            self._google_tokens.add(token)
        return _json(
            200,
            {
                "access_token": token,
                "expires_in": 3599,
                "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/analytics.user.deletion",
            },
        )

    def _ga4_user_deletion(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        def error(status: int, message: str, state: str) -> _Response:
            return _json(status, {"error": {"code": status, "message": message, "status": state}})

        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        with self._lock:
            known = token in self._google_tokens
        if not known:
            return error(401, "Request had invalid authentication credentials.", "UNAUTHENTICATED")
        try:
            payload = json.loads(body)
        except ValueError:
            return error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        ident = payload.get("id") if isinstance(payload, dict) else None
        targets = (
            [n for n in ("propertyId", "webPropertyId", "firebaseProjectId") if payload.get(n)]
            if isinstance(payload, dict)
            else []
        )
        if (
            not isinstance(ident, dict)
            or ident.get("type") not in GOOGLE_ID_TYPES
            or not isinstance(ident.get("userId"), str)
            or not ident["userId"]
            or len(targets) != 1
        ):
            return error(
                400,
                "id.type, id.userId and exactly one of propertyId, webPropertyId or "
                "firebaseProjectId are required",
                "INVALID_ARGUMENT",
            )
        moment = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        return _json(200, {**payload, "deletionRequestTime": moment})

    def _slack(
        self, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> _Response:
        if len([part for part in path.split("/")[2:] if part]) < 3:
            return _text(404, "no_service")
        error = slack_payload_error(body, headers.get("content-type", ""))
        if error is not None:
            return _text(400, error)
        interval = self.slack_min_interval_s
        now = time.monotonic()
        with self._lock:
            last = self._slack_last.get(path)
            if interval and last is not None and now - last < interval:
                return _text(429, "rate_limited", **{"Retry-After": str(max(1, round(interval)))})
            self._slack_last[path] = now
        return _text(200, "ok")

    def _control(self, method: str, path: str, query: dict[str, str], raw: bytes) -> _Response:
        route = (method, path.rstrip("/"))
        if route == ("GET", "/_sink/requests"):
            records = self.requests(query.get("path"), query.get("platform"))
            return _json(200, {"requests": records})
        if route == ("DELETE", "/_sink/requests"):
            self.clear()
            return _Response(204)
        if route == ("GET", "/_sink/fault"):
            return _json(200, {"fault": self.fault()})
        if route == ("DELETE", "/_sink/fault"):
            self.set_fault(None)
            return _Response(204)
        if route in (("PUT", "/_sink/fault"), ("POST", "/_sink/fault")):
            try:
                data = json.loads(raw.decode() or "{}")
                if not isinstance(data, dict):
                    raise ValueError("the fault must be a JSON object")
                fault = Fault.from_dict(data)
            except (ValueError, TypeError) as exc:
                return _json(400, {"error": str(exc)})
            self.set_fault(fault)
            return _json(200, {"fault": self.fault()})
        if route == ("GET", "/_sink/mixpanel/insert-ids"):
            return _json(200, {"insert_ids": self.mixpanel_insert_ids(query.get("project"))})
        if route == ("GET", "/_sink/health"):
            return _json(200, {"ok": True})
        return _json(404, {"error": f"no control endpoint {method} {path}"})


def _iter_lines(sink: Sink) -> Iterator[str]:
    yield f"destination sink listening on {sink.url}"
    yield "  Mixpanel /import /track, GA4 /mp/collect /debug/mp/collect, Slack /services/..."
    yield "  control: GET|DELETE /_sink/requests, GET|PUT|DELETE /_sink/fault"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.sink", description="The local stack's destination sink."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    args = parser.parse_args(argv)
    sink = Sink(args.host, args.port)
    sink.start()
    for line in _iter_lines(sink):
        print(line, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
