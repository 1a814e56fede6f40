"""The console's handler called in-process (as its own role on moto), like a browser would:
a session cookie, forms with their CSRF token."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from devstack.lambda_events import LambdaContext, http_event
from success_metrics.console.routes import ROUTES

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Page:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.status: int = raw["statusCode"]
        self.headers = {k.lower(): v for k, v in (raw.get("headers") or {}).items()}
        self.cookies: list[str] = raw.get("cookies") or []
        body = raw.get("body") or ""
        self.body: str = base64.b64decode(body).decode() if raw.get("isBase64Encoded") else body

    @property
    def location(self) -> str:
        return self.headers.get("location", "")

    def csrf(self) -> str:
        found = CSRF.search(self.body)
        assert found, "no form with a CSRF token on this page"
        return found[1]


def route_of(method: str, path: str) -> tuple[str, dict[str, str]]:
    for m, pattern in ROUTES:
        if m != method:
            continue
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(pattern)) + "$"
        found = re.match(regex, path)
        if found:
            return pattern, found.groupdict()
    raise AssertionError(f"no console route for {method} {path}")


class Console:
    def __init__(self, handler: Any, cookie: str = "") -> None:
        self.handler = handler
        self.cookie = cookie

    def request(
        self, method: str, target: str, form: dict[str, Any] | None = None, **headers: str
    ) -> Page:
        split = urlsplit(target)
        pattern, params = route_of(method, split.path)
        sent = {"host": "console.example.test", "x-forwarded-proto": "https", **headers}
        if self.cookie:
            sent["cookie"] = f"sm_console={self.cookie}"
        body = None
        if form is not None:
            sent["content-type"] = "application/x-www-form-urlencoded"
            body = urlencode(form, doseq=True).encode()
        event = http_event(
            method,
            split.path,
            route_key=f"{method} {pattern}",
            path_parameters=params or None,
            headers=sent,
            raw_query=split.query,
            body=body,
        )
        page = Page(self.handler(event, LambdaContext("ConsoleFunction", 29)))
        for cookie in page.cookies:
            name, _, rest = cookie.partition("=")
            if name == "sm_console":
                self.cookie = rest.split(";", 1)[0]
        return page

    def get(self, target: str, **headers: str) -> Page:
        return self.request("GET", target, **headers)

    def post(self, target: str, form: dict[str, Any], **headers: str) -> Page:
        return self.request("POST", target, form, **headers)

    def sign_in(self, api_key: str) -> Page:
        page = self.post("/console/sign-in", {"api_key": api_key})
        assert page.status == 303, page.body
        return page

    def act(self, page_path: str, target: str, form: dict[str, Any] | None = None) -> Page:
        """Post a form of `page_path` to `target`, with the page's CSRF token."""
        token = self.get(page_path).csrf()
        return self.post(target, {**(form or {}), "csrf": token})
