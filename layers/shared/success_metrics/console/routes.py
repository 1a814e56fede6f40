"""The console's routes: the template's `ConsoleFunction` events are exactly these (tests check)."""

from __future__ import annotations

from collections.abc import Callable

from success_metrics.console import web

Handler = Callable[..., web.Reply]

ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/console"): web.index,
    ("GET", "/console/"): web.index,
    ("GET", "/console/sign-in"): web.sign_in_form,
    ("POST", "/console/sign-in"): web.sign_in,
    ("POST", "/console/sign-out"): web.sign_out,
    ("GET", "/console/overview"): web.overview,
    ("GET", "/console/metrics"): web.metrics,
    ("GET", "/console/metrics.csv"): web.metrics_csv,
    ("GET", "/console/static/{name}"): web.static,
}
