"""The local stack's destination sink: one HTTP server standing in for every outbound destination.

It fakes, on one port, the four kinds of endpoint the delivery functions call:

- **Mixpanel Ingestion API** (`POST /import`, and `/track`; the EU/IN hosts use the same paths):
  HTTP Basic auth (any non-empty username: service account, project token or secret), gzip
  `Content-Encoding`, JSON array or `application/x-ndjson`; at most 2000 events and 10 MB
  (10 * 1024 * 1024 bytes) of uncompressed JSON per request, else 413 with Mixpanel's JSON error;
  with `strict=1` each event must have `event`, `properties.time` (seconds or milliseconds, not
  before 1971-01-01, not more than one hour in the future), `properties.distinct_id` (the empty
  string is allowed; placeholders such as "null" or "anon" are not) and `properties.$insert_id`
  (at most 36 characters, letters, digits and "-"), be under 1 MB and have fewer than 255
  properties; failures answer 400 with `failed_records` while the valid events still count as
  imported. 401 `{"code": 401, "error": "Invalid credentials", ...}` without credentials.
  Sources: https://docs.mixpanel.com/reference/import-events (2000 events, 10 MB: the older
  https://developer.mixpanel.com/reference/import-events said 2 MB; the size is an attribute),
  https://docs.mixpanel.com/troubleshooting/errors/400-bad-request,
  https://docs.mixpanel.com/troubleshooting/errors/401-unauthorized,
  https://docs.mixpanel.com/troubleshooting/errors/413-payload-too-large,
  https://docs.mixpanel.com/troubleshooting/errors/429-rate-limit-exceeded,
  https://docs.mixpanel.com/reference/track-event (1 MB per event, fewer than 255 properties).
- **GA4 Measurement Protocol** (`POST /mp/collect`): always 204, even for a malformed payload,
  as the real one "does not return HTTP error codes"; `POST /debug/mp/collect` answers 200 with
  `{"validationMessages": [{"fieldPath", "description", "validationCode"}]}` from a validator
  enforcing: body smaller than 130 kB; `client_id` (or `app_instance_id`) required; `user_id` at
  most 256 characters; at most 25 events; event and parameter names at most 40 characters,
  starting with a letter, letters/digits/underscores only, no reserved names or prefixes
  (`firebase_`, `google_`, `ga_`); at most 25 parameters per event; parameter values at most 100
  characters (page_title 300, page_referrer 420, page_location 1000); items at most 10 custom
  parameters; at most 25 user properties, names at most 24 and values at most 36 characters;
  `timestamp_micros` no more than 72 hours old. The validation server does not check the
  `api_secret` value; this fake only checks that it and `measurement_id` are present.
  Sources: https://developers.google.com/analytics/devguides/collection/protocol/ga4/sending-events
  (Limitations), .../protocol/ga4/validating-events, .../protocol/ga4/reference,
  https://support.google.com/analytics/answer/13316687 (reserved names),
  https://firebase.google.com/docs/reference/android/com/google/firebase/analytics/FirebaseAnalytics.Event
  (reserved event names), https://support.google.com/analytics/answer/9267744 (collection limits).
- **Slack incoming webhooks** (`POST /services/T.../B.../...`): 200 `ok`; 400 `invalid_payload`
  for a body that is not a JSON object, `no_text` without `text`, `blocks` or `attachments`,
  `invalid_blocks` for more than 50 blocks or a malformed block; one message per second per
  webhook, a faster one gets 429 `rate_limited` with `Retry-After: 1`.
  Sources: https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks,
  https://api.slack.com/docs/rate-limits, https://docs.slack.dev/reference/block-kit/blocks.
- **Mixpanel GDPR API v3** (`POST /api/app/data-deletions/v3.0/?token=<project token>`): a
  `Authorization: Bearer <GDPR OAuth token>` header, else 401; the `token` query parameter, a JSON
  body with `distinct_ids` (1 to 2000 strings) and `compliance_type` `GDPR` or `CCPA` (default
  GDPR), else 400 `{"status": "error", "error": ...}`; 200 `{"status": "ok", "results":
  {"task_id": ...}}`. Source: https://docs.mixpanel.com/reference/gdpr-api (create deletion).
- **Google OAuth 2.0 token endpoint** (`POST /token`, form-encoded): `grant_type=refresh_token`
  with `client_id`, `client_secret` and `refresh_token`, else 400 `{"error": "invalid_request"}`
  (`unsupported_grant_type` for another grant); 200 with a Bearer `access_token` that the User
  Deletion fake accepts. Source: https://developers.google.com/identity/protocols/oauth2/web-server
  (refreshing an access token).
- **Google Analytics User Deletion API** (`POST /analytics/v3/userDeletion/userDeletionRequests:
  upsert`): a Bearer token this sink issued, else 401 `UNAUTHENTICATED`; a body with `id.type`
  (`CLIENT_ID`, `USER_ID` or `APP_INSTANCE_ID`), a non-empty `id.userId` and exactly one of
  `propertyId`, `webPropertyId`, `firebaseProjectId`, else 400 `INVALID_ARGUMENT`; 200 echoes the
  request with `deletionRequestTime`. Source:
  https://developers.google.com/analytics/devguides/config/userdeletion/v3/reference
- **Customer webhook endpoints** (any other path): 200 `{"received": true}`.

Every request is recorded (bounded, oldest dropped) and can be read back in-process
(`Sink.requests()`) or over HTTP on the same port (`GET /_sink/requests`). Faults (an error
status, a delay, or a dropped connection; for every matching request, a seeded fraction of them,
or the next N) are set with `Sink.set_fault()` or `PUT /_sink/fault`. Run it standalone with
`python -m devstack.sink --port 3001`.
"""

from __future__ import annotations

from devstack.sink.common import MAX_RECORDED, MAX_REQUEST_BYTES, PLATFORMS
from devstack.sink.faults import Fault
from devstack.sink.ga4 import (
    GA4_FUTURE_ALLOWANCE_S,
    GA4_LONG_PARAM_VALUES,
    GA4_MAX_BACKDATE_S,
    GA4_MAX_BODY_BYTES,
    GA4_MAX_EVENTS,
    GA4_MAX_ITEM_CUSTOM_PARAMS,
    GA4_MAX_NAME,
    GA4_MAX_PARAM_VALUE,
    GA4_MAX_PARAMS,
    GA4_MAX_USER_ID,
    GA4_MAX_USER_PROPERTIES,
    GA4_MAX_USER_PROPERTY_NAME,
    GA4_MAX_USER_PROPERTY_VALUE,
    GA4_RESERVED_EVENT_NAMES,
    GA4_RESERVED_PARAM_PREFIXES,
    GA4_RESERVED_PREFIXES,
    GA4_RESERVED_USER_PROPERTIES,
    GA4_STANDARD_ITEM_PARAMS,
    GOOGLE_DELETION_PATH,
    GOOGLE_ID_TYPES,
    ga4_validation_messages,
)
from devstack.sink.mixpanel import (
    MIXPANEL_GDPR_MAX_IDS,
    MIXPANEL_INSERT_ID,
    MIXPANEL_MAX_BYTES,
    MIXPANEL_MAX_EVENT_BYTES,
    MIXPANEL_MAX_EVENTS,
    MIXPANEL_MAX_FUTURE_S,
    MIXPANEL_MAX_PROPERTIES,
    MIXPANEL_MIN_TIME_S,
    MIXPANEL_MS_THRESHOLD,
    MIXPANEL_PLACEHOLDER_IDS,
    mixpanel_record_error,
)
from devstack.sink.server import Sink, main
from devstack.sink.slack import (
    SLACK_MAX_BLOCKS,
    SLACK_MAX_SECTION_TEXT,
    SLACK_MIN_INTERVAL_S,
    slack_payload_error,
)

__all__ = [
    "GA4_FUTURE_ALLOWANCE_S",
    "GA4_LONG_PARAM_VALUES",
    "GA4_MAX_BACKDATE_S",
    "GA4_MAX_BODY_BYTES",
    "GA4_MAX_EVENTS",
    "GA4_MAX_ITEM_CUSTOM_PARAMS",
    "GA4_MAX_NAME",
    "GA4_MAX_PARAMS",
    "GA4_MAX_PARAM_VALUE",
    "GA4_MAX_USER_ID",
    "GA4_MAX_USER_PROPERTIES",
    "GA4_MAX_USER_PROPERTY_NAME",
    "GA4_MAX_USER_PROPERTY_VALUE",
    "GA4_RESERVED_EVENT_NAMES",
    "GA4_RESERVED_PARAM_PREFIXES",
    "GA4_RESERVED_PREFIXES",
    "GA4_RESERVED_USER_PROPERTIES",
    "GA4_STANDARD_ITEM_PARAMS",
    "GOOGLE_DELETION_PATH",
    "GOOGLE_ID_TYPES",
    "MAX_RECORDED",
    "MAX_REQUEST_BYTES",
    "MIXPANEL_GDPR_MAX_IDS",
    "MIXPANEL_INSERT_ID",
    "MIXPANEL_MAX_BYTES",
    "MIXPANEL_MAX_EVENTS",
    "MIXPANEL_MAX_EVENT_BYTES",
    "MIXPANEL_MAX_FUTURE_S",
    "MIXPANEL_MAX_PROPERTIES",
    "MIXPANEL_MIN_TIME_S",
    "MIXPANEL_MS_THRESHOLD",
    "MIXPANEL_PLACEHOLDER_IDS",
    "PLATFORMS",
    "SLACK_MAX_BLOCKS",
    "SLACK_MAX_SECTION_TEXT",
    "SLACK_MIN_INTERVAL_S",
    "Fault",
    "Sink",
    "ga4_validation_messages",
    "main",
    "mixpanel_record_error",
    "slack_payload_error",
]
