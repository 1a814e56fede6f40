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
    ("GET", "/console/sign-in/link"): web.link_form,
    ("POST", "/console/sign-in/link"): web.link_sign_in,
    ("GET", "/console/overview"): web.overview,
    ("GET", "/console/metrics"): web.metrics,
    ("GET", "/console/metrics.csv"): web.metrics_csv,
    ("GET", "/console/cohorts"): web.cohorts,
    ("GET", "/console/breakdowns"): web.breakdowns,
    ("GET", "/console/static/{name}"): web.static,
    ("GET", "/console/exports"): web.exports_list,
    ("POST", "/console/exports"): web.exports_create,
    ("POST", "/console/exports/{export_id}/cancel"): web.exports_cancel,
    ("GET", "/console/exports/{export_id}/download"): web.exports_download,
    ("GET", "/console/exports/{export_id}/manifest"): web.exports_manifest,
    ("GET", "/console/deliveries"): web.deliveries,
    ("POST", "/console/deliveries/{delivery_id}/retry"): web.deliveries_retry,
    ("GET", "/console/deliveries/{delivery_id}"): web.delivery,
    ("POST", "/console/deliveries/recover"): web.deliveries_recover,
    ("GET", "/console/dead-letters"): web.dead_letters,
    ("POST", "/console/dead-letters/{queue}/replay"): web.dead_letters_replay,
    ("POST", "/console/dead-letters/{queue}/{message_id}/replay"): web.dead_letter_replay,
    ("GET", "/console/privacy"): web.privacy,
    ("POST", "/console/privacy/erasures"): web.privacy_erase,
    ("GET", "/console/privacy/erasures/{erasure_id}"): web.privacy_erasure,
    ("GET", "/console/settings"): web.settings,
    ("POST", "/console/settings/webhook-secret"): web.settings_rotate_secret,
    ("GET", "/console/destinations"): web.destinations,
    ("POST", "/console/destinations"): web.destination_create,
    ("GET", "/console/destinations/new"): web.destination_new,
    ("GET", "/console/destinations/{dest_id}/edit"): web.destination_edit,
    ("POST", "/console/destinations/{dest_id}"): web.destination_update,
    ("POST", "/console/destinations/{dest_id}/enabled"): web.destinations_toggle,
    ("POST", "/console/destinations/{dest_id}/validate"): web.destinations_validate,
    ("POST", "/console/privacy/access-requests"): web.privacy_access,
    ("GET", "/console/live"): web.live,
    ("POST", "/console/settings/keys"): web.settings_create_key,
    ("POST", "/console/settings/keys/{key_id}/revoke"): web.settings_revoke_key,
    ("POST", "/console/settings/margin"): web.settings_margin,
    ("POST", "/console/settings/slack"): web.settings_slack,
    ("POST", "/console/settings/alerts"): web.settings_alert,
    ("POST", "/console/settings/alerts/clear"): web.settings_clear_alerts,
    ("POST", "/console/settings/privacy"): web.settings_privacy,
}
