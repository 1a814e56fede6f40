"""The console's HTTP edge: sessions from cookies, CSRF on every state change, strict security
headers, and pages rendered with Jinja2 (autoescaping on: every value a page shows may come from
an attacker — event properties, user ids, destination names).

Each function takes the request as `Request` and returns a `Reply`; the Lambda handler only
routes (functions/console/app.py).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape

from success_metrics import admin, audit
from success_metrics.console import operations, pages, sessions
from success_metrics.errors import (
    ForbiddenError,
    SuccessMetricsError,
    UnauthenticatedError,
    ValidationFailedError,
)
from success_metrics.http import Principal

MAX_FORM = 16 * 1024
T = TypeVar("T")
STATIC = ("console.css", "console.js")
CONTENT_TYPES = {"css": "text/css; charset=utf-8", "js": "text/javascript; charset=utf-8"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    cookies: dict[str, str]
    body: bytes = b""

    @property
    def secure(self) -> bool:
        return self.headers.get("x-forwarded-proto", "https") == "https"

    request_id: str = ""
    source_ip: str = ""

    def form(self) -> dict[str, str]:
        if len(self.body) > MAX_FORM:
            raise ValidationFailedError("the form is too large")
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def form_lists(self) -> dict[str, list[str]]:
        if len(self.body) > MAX_FORM:
            raise ValidationFailedError("the form is too large")
        return parse_qs(self.body.decode("utf-8", "replace"))


@dataclass
class Reply:
    status: int
    body: str | bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)


def security_headers(nonce: str | None = None) -> dict[str, str]:
    script = f"'nonce-{nonce}'" if nonce else "'none'"
    return {
        "Content-Security-Policy": (
            "default-src 'none'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            f"script-src {script}; form-action 'self'; frame-ancestors 'none'; "
            "base-uri 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


@cache
def _static(name: str) -> tuple[bytes, str]:
    data = resources.files("success_metrics.console").joinpath("static", name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:12]


def asset(name: str) -> str:
    """The content-hashed URL of a static file (served with a year's immutable cache)."""
    stem, _, ext = name.rpartition(".")
    return f"/console/static/{stem}.{_static(name)[1]}.{ext}"


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("success_metrics.console", "templates"),
        autoescape=select_autoescape(["html"]),
    )
    env.globals["asset"] = asset
    env.globals["when"] = operations.when
    env.globals["when_ts"] = operations.when_ts
    env.globals["iso_ts"] = operations.iso_ts
    env.filters["num"] = pages.number
    return env


def render(request: Request, template: str, status: int = 200, **context: Any) -> Reply:
    nonce = secrets.token_urlsafe(16)
    body = _environment().get_template(template).render(nonce=nonce, **context)
    return Reply(status, body, headers=security_headers(nonce))


def _redirect(location: str, cookies: list[str] | None = None) -> Reply:
    return Reply(
        303, "", headers={"Location": location, **security_headers()}, cookies=cookies or []
    )


def _cookie(request: Request, value: str, max_age: int) -> str:
    parts = [
        f"{sessions.COOKIE}={value}",
        "Path=/console",
        "HttpOnly",
        "SameSite=Strict",
        f"Max-Age={max_age}",
    ]
    if request.secure:
        parts.append("Secure")
    return "; ".join(parts)


def _same_origin(request: Request) -> bool:
    """A state change must come from a page of this console. Browsers say where a request comes
    from in `Sec-Fetch-Site`; under `Referrer-Policy: no-referrer` their `Origin` is "null", so
    it only counts when it names a site."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return urlsplit(origin).netloc == request.headers.get("host", "")
    return True  # not a browser: the CSRF token (or, to sign in, the key itself) decides


def _session(request: Request) -> tuple[Principal, str]:
    cookie = request.cookies.get(sessions.COOKIE, "")
    return sessions.verify(cookie), cookie


def _page(request: Request, template: str, page: str, build: Any, **extra: Any) -> Reply:
    try:
        principal, cookie = _session(request)
    except UnauthenticatedError as exc:
        return _redirect("/console/sign-in?" + urlencode({"reason": exc.detail}))
    context: dict[str, Any] = {
        "principal": principal,
        "csrf": sessions.csrf_token(cookie),
        "page": page,
        "done": request.query.get("done", "")[:300],
    }
    params = {k: v for k, v in request.query.items() if k != "done"}
    try:
        view = build(principal, params)
    except SuccessMetricsError as exc:
        return _problem(request, exc, **context)
    return render(request, template, view=view, **context, **extra)


def dispatch(handler: Callable[..., Reply], request: Request, params: dict[str, str]) -> Reply:
    """Call a route's handler; a refusal raised before the handler could say it (an oversized
    form, say) is the problem page too, never the gateway's bare 500."""
    try:
        return handler(request, **params)
    except SuccessMetricsError as exc:
        return _problem(request, exc, principal=None)


def index(request: Request) -> Reply:
    return _redirect("/console/overview")


def sign_in_form(request: Request) -> Reply:
    return render(
        request,
        "sign_in.html",
        title="Sign in",
        principal=None,
        problem=request.query.get("reason", "")[:200] or None,
    )


def _start_session(request: Request, begin: Callable[[str], tuple[str, Any]], field: str) -> Reply:
    """Sign in with the form's `field` (an API key, or a link's token) and go to the overview."""
    if not _same_origin(request):
        problem, status = "the sign-in form came from another site", 403
    else:
        try:
            cookie, _ = begin(request.form().get(field, ""))
        except SuccessMetricsError as exc:
            problem, status = exc.detail, 401
        else:
            return _redirect("/console/overview", [_cookie(request, cookie, sessions.MAX_AGE)])
    return render(request, "sign_in.html", status, title="Sign in", principal=None, problem=problem)


def sign_in(request: Request) -> Reply:
    return _start_session(request, sessions.sign_in, "api_key")


def link_form(request: Request) -> Reply:
    """The page a sign-in link opens: a button that uses the link (a GET never does, so a mail
    scanner that follows links does not use it up)."""
    return render(
        request,
        "sign_in_link.html",
        title="Sign in",
        principal=None,
        token=request.query.get("token", "")[:128],
    )


def link_sign_in(request: Request) -> Reply:
    return _start_session(request, sessions.sign_in_with_link, "token")


def sign_out(request: Request) -> Reply:
    cookie = request.cookies.get(sessions.COOKIE, "")
    try:
        sessions.verify(cookie)
        sessions.check_csrf(cookie, request.form().get("csrf", ""))
    except UnauthenticatedError:
        pass  # an expired or revoked session is signed out anyway
    except SuccessMetricsError as exc:
        return _problem(request, exc, principal=None)
    return _redirect("/console/sign-in", [_cookie(request, "", 0)])


def overview(request: Request) -> Reply:
    return _page(request, "overview.html", "overview", pages.overview, title="Overview")


def metrics(request: Request) -> Reply:
    found_range = _range_strings(request.query)
    return _page(
        request,
        "metrics.html",
        "metrics",
        pages.trend,
        title="Metrics",
        metrics=pages.METRICS,
        granularities=pages.GRANULARITIES,
        query=urlencode(request.query),
        **found_range,
    )


def breakdowns(request: Request) -> Reply:
    return _page(
        request,
        "breakdowns.html",
        "metrics",
        pages.breakdowns,
        title="Breakdowns",
        dimensions=pages.DIMENSIONS,
        granularities=pages.GRANULARITIES,
    )


def cohorts(request: Request) -> Reply:
    return _page(request, "cohorts.html", "metrics", pages.cohorts, title="Cohorts and funnel")


def _range_strings(query: dict[str, str]) -> dict[str, str]:
    try:
        start, end = pages.parse_range(query)
    except SuccessMetricsError:
        return {"start": "", "end": ""}
    return {"start": start.isoformat(), "end": end.isoformat()}


def metrics_csv(request: Request) -> Reply:
    try:
        principal, _ = _session(request)
        body = pages.trend_csv(principal, request.query)
    except UnauthenticatedError as exc:
        return Reply(401, exc.detail + "\n", "text/plain; charset=utf-8", security_headers())
    except SuccessMetricsError as exc:
        return Reply(exc.status, exc.detail + "\n", "text/plain; charset=utf-8", security_headers())
    headers = {
        **security_headers(),
        "Content-Disposition": 'attachment; filename="metric.csv"',
    }
    return Reply(200, body, "text/csv; charset=utf-8", headers)


def static(request: Request, name: str) -> Reply:
    stem, _, rest = name.partition(".")
    digest, _, ext = rest.partition(".")
    wanted = f"{stem}.{ext}"
    if wanted not in STATIC or _static(wanted)[1] != digest:
        return Reply(404, "not found\n", "text/plain; charset=utf-8", security_headers())
    data, _ = _static(wanted)
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    return Reply(200, data, CONTENT_TYPES[ext], headers)


# -- operator pages and their actions -------------------------------------------------------


def _problem(request: Request, exc: SuccessMetricsError, **context: Any) -> Reply:
    return render(
        request,
        "problem.html",
        exc.status,
        title=exc.title,
        heading=exc.title,
        problem=exc.detail,
        **context,
    )


def _change(
    request: Request,
    route: str,
    do: Callable[[Principal], T],
    status: int,
    resource_id: str | None = None,
) -> tuple[T, Principal, dict[str, Any]] | Reply:
    """A state change: a signed-in session, a form from this console with its CSRF token, and
    an audit record around `do` (as for the API). Its result, or the page that says why not."""
    try:
        principal, cookie = _session(request)
    except UnauthenticatedError as exc:
        return _redirect("/console/sign-in?" + urlencode({"reason": exc.detail}))
    context: dict[str, Any] = {"principal": principal, "csrf": sessions.csrf_token(cookie)}
    try:
        if not _same_origin(request):
            raise ForbiddenError("the form came from another site")
        token = (request.form_lists().get("csrf") or [""])[0]
        sessions.check_csrf(cookie, token)
        entry = audit.Entry(
            org_id=principal.org_id,
            key_id=principal.key_id,
            method=request.method,
            route=f"{request.method} {route}",
            request_id=request.request_id or secrets.token_hex(8),
            resource_id=resource_id,
            source_ip=request.source_ip or None,
            user_agent=request.headers.get("user-agent"),
        )
        with audit.audited(entry) as report:
            result = do(principal)
            report(status)
    except SuccessMetricsError as exc:
        return _problem(request, exc, **context)
    return result, principal, context


def _act(
    request: Request,
    route: str,
    do: Callable[[Principal], tuple[str, str]],
    resource_id: str | None = None,
) -> Reply:
    """A change that then goes to the page `do` names, saying what was done."""
    done = _change(request, route, do, 303, resource_id)
    if isinstance(done, Reply):
        return done
    (target, message), _, _ = done
    separator = "&" if "?" in target else "?"
    return _redirect(f"{target}{separator}" + urlencode({"done": message}))


def _settings_after(
    request: Request, route: str, do: Callable[[Principal], str], shown: str
) -> Reply:
    """A settings change whose answer shows a new secret once (`shown` names it)."""
    done = _change(request, route, do, 201)
    if isinstance(done, Reply):
        return done
    value, principal, context = done
    return render(
        request,
        "settings.html",
        201,
        title="Settings",
        page="settings",
        view=operations.keys_page(principal, {}),
        **{shown: value},
        **context,
    )


def exports_list(request: Request) -> Reply:
    return _page(
        request,
        "exports.html",
        "exports",
        operations.exports_page,
        title="Exports",
        datasets=operations.DATASETS,
        formats=operations.FORMATS,
        compressions=operations.COMPRESSIONS,
        granularities=pages.GRANULARITIES,
    )


def exports_create(request: Request) -> Reply:
    form = request.form()

    def do(principal: Principal) -> tuple[str, str]:
        export_id = operations.create_export(principal, form)
        return "/console/exports", f"export {export_id} queued"

    return _act(request, "/console/exports", do)


def exports_cancel(request: Request, export_id: str) -> Reply:
    def do(principal: Principal) -> tuple[str, str]:
        operations.cancel_export(principal, export_id)
        return "/console/exports", f"export {export_id} cancelled"

    return _act(request, "/console/exports/{export_id}/cancel", do, export_id)


def exports_download(request: Request, export_id: str) -> Reply:
    try:
        principal, _ = _session(request)
        url = operations.download_url(principal, export_id)
    except UnauthenticatedError as exc:
        return _redirect("/console/sign-in?" + urlencode({"reason": exc.detail}))
    except SuccessMetricsError as exc:
        return _problem(request, exc, principal=None)
    return Reply(302, "", headers={"Location": url, **security_headers()})


def exports_manifest(request: Request, export_id: str) -> Reply:
    return _page(
        request,
        "manifest.html",
        "exports",
        lambda p, _: operations.export_manifest(p, export_id),
        title="Export manifest",
    )


def deliveries(request: Request) -> Reply:
    return _page(
        request,
        "deliveries.html",
        "deliveries",
        operations.deliveries_page,
        title="Deliveries",
        states=admin.DELIVERY_STATES,
    )


def delivery(request: Request, delivery_id: str) -> Reply:
    return _page(
        request,
        "delivery.html",
        "deliveries",
        lambda p, _: operations.delivery_page(p, delivery_id),
        title="Delivery",
    )


def deliveries_recover(request: Request) -> Reply:
    form = request.form()

    def do(principal: Principal) -> tuple[str, str]:
        recovery_id = operations.start_recovery(principal, form)
        return "/console/deliveries", f"recovery {recovery_id} started"

    return _act(request, "/console/deliveries/recover", do)


def deliveries_retry(request: Request, delivery_id: str) -> Reply:
    def do(principal: Principal) -> tuple[str, str]:
        operations.retry_delivery(principal, delivery_id)
        return "/console/deliveries", f"delivery {delivery_id} queued again"

    return _act(request, "/console/deliveries/{delivery_id}/retry", do, delivery_id)


def dead_letters(request: Request) -> Reply:
    return _page(
        request,
        "dead_letters.html",
        "dead-letters",
        operations.dead_letters_page,
        title="Dead letters",
        labels=operations.QUEUE_LABELS,
    )


def dead_letter_replay(request: Request, queue: str, message_id: str) -> Reply:
    def do(principal: Principal) -> tuple[str, str]:
        operations.replay_dead_letter(principal, queue, message_id)
        return "/console/dead-letters", f"message {message_id} sent to the {queue} queue again"

    return _act(request, "/console/dead-letters/{queue}/{message_id}/replay", do, message_id)


def dead_letters_replay(request: Request, queue: str) -> Reply:
    def do(principal: Principal) -> tuple[str, str]:
        count = operations.replay_dead_letters(principal, queue)
        return "/console/dead-letters", f"{count} message(s) sent to the {queue} queue again"

    return _act(request, "/console/dead-letters/{queue}/replay", do, queue)


def privacy(request: Request) -> Reply:
    return _page(request, "privacy.html", "privacy", operations.privacy_page, title="Privacy")


def privacy_erase(request: Request) -> Reply:
    form = request.form()

    def do(principal: Principal) -> tuple[str, str]:
        erasure_id = operations.start_erasure(principal, form)
        return f"/console/privacy/erasures/{erasure_id}", f"erasure {erasure_id} started"

    return _act(request, "/console/privacy/erasures", do)


def privacy_erasure(request: Request, erasure_id: str) -> Reply:
    return _page(
        request,
        "erasure.html",
        "privacy",
        lambda p, _: operations.erasure_page(p, erasure_id),
        title="Erasure",
    )


def settings(request: Request) -> Reply:
    return _page(request, "settings.html", "settings", operations.keys_page, title="Settings")


def settings_create_key(request: Request) -> Reply:
    """The new key is shown once, on the answer to this form, and never again."""
    form = request.form_lists()
    return _settings_after(
        request,
        "/console/settings/keys",
        lambda principal: operations.create_key(principal, form),
        "created",
    )


def settings_revoke_key(request: Request, key_id: str) -> Reply:
    def do(principal: Principal) -> tuple[str, str]:
        operations.revoke_key(principal, key_id)
        return "/console/settings", f"key {key_id} revoked"

    return _act(request, "/console/settings/keys/{key_id}/revoke", do, key_id)


def destinations(request: Request) -> Reply:
    return _page(
        request,
        "destinations.html",
        "destinations",
        operations.destinations_page,
        title="Destinations",
    )


def destinations_toggle(request: Request, dest_id: str) -> Reply:
    form = request.form()
    enabled = form.get("enabled") == "true"

    def do(principal: Principal) -> tuple[str, str]:
        operations.set_destination_enabled(principal, dest_id, enabled)
        return "/console/destinations", f"{dest_id} {'enabled' if enabled else 'disabled'}"

    return _act(request, "/console/destinations/{dest_id}/enabled", do, dest_id)


def destinations_validate(request: Request, dest_id: str) -> Reply:
    def do(principal: Principal) -> tuple[str, str]:
        return "/console/destinations", operations.validate_destination(principal, dest_id)

    return _act(request, "/console/destinations/{dest_id}/validate", do, dest_id)


def privacy_access(request: Request) -> Reply:
    form = request.form()

    def do(principal: Principal) -> tuple[str, str]:
        export_id = operations.access_request(principal, form)
        where = "emailed" if form.get("notify", "").strip() else "on the Exports page"
        return "/console/privacy", f"access export {export_id} queued: {where} when ready"

    return _act(request, "/console/privacy/access-requests", do)


def live(request: Request) -> Reply:
    return _page(request, "live.html", "live", operations.live_page, title="Live events")


def settings_rotate_secret(request: Request) -> Reply:
    """The new webhook secret is shown once, on the answer to this form."""
    return _settings_after(
        request, "/console/settings/webhook-secret", operations.rotate_secret, "new_secret"
    )


def _organization_change(
    route: str, change: Callable[[Principal, dict[str, str]], str]
) -> Callable[[Request], Reply]:
    """A Settings form that changes one of the organization's choices, then shows Settings."""

    def handler(request: Request) -> Reply:
        form = request.form()
        return _act(request, route, lambda p: ("/console/settings", change(p, form)))

    handler.__name__ = handler.__qualname__ = change.__name__
    return handler


settings_margin = _organization_change("/console/settings/margin", operations.set_margin)
settings_slack = _organization_change("/console/settings/slack", operations.set_slack)
settings_alert = _organization_change("/console/settings/alerts", operations.add_alert)
settings_clear_alerts = _organization_change(
    "/console/settings/alerts/clear", operations.clear_alert
)
settings_privacy = _organization_change("/console/settings/privacy", operations.set_privacy)


def destination_new(request: Request) -> Reply:
    kind = request.query.get("kind", "webhook")
    return _page(
        request,
        "destination_form.html",
        "destinations",
        lambda p, _: operations.destination_form(p, kind),
        title="Add a destination",
        kinds=operations.DESTINATION_KINDS,
    )


def destination_edit(request: Request, dest_id: str) -> Reply:
    return _page(
        request,
        "destination_form.html",
        "destinations",
        lambda p, _: operations.destination_form(p, "", dest_id),
        title=f"Edit {dest_id}",
        kinds=operations.DESTINATION_KINDS,
    )


def _destination_saved(request: Request, route: str, dest_id: str = "") -> Reply:
    """Create or edit; a generated signing secret is shown once, on this answer."""
    form = request.form()
    done = _change(
        request, route, lambda p: operations.save_destination(p, form, dest_id), 200, dest_id
    )
    if isinstance(done, Reply):
        return done
    (saved, secret), principal, context = done
    if secret is None:
        return _redirect("/console/destinations?" + urlencode({"done": f"{saved} saved"}))
    return render(
        request,
        "destinations.html",
        201,
        title="Destinations",
        page="destinations",
        view=operations.destinations_page(principal, {}),
        new_secret=secret,
        saved=saved,
        **context,
    )


def destination_create(request: Request) -> Reply:
    return _destination_saved(request, "/console/destinations")


def destination_update(request: Request, dest_id: str) -> Reply:
    return _destination_saved(request, "/console/destinations/{dest_id}", dest_id)
