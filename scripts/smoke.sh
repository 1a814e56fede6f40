#!/usr/bin/env bash
# Smoke test of a deployed Success Metrics stack, run right after `sam deploy`.
#
# Creates a throwaway organization, sends the sample batch, and follows it through platform sync
# (when --webhook-url is given), the metrics, an export and a GDPR erasure, then revokes the
# throwaway key. Each step prints PASS, FAIL or SKIP with one line of reason; the script exits 1
# if any step failed. Uses smctl (--json), curl and python3; aws only to read the ApiUrl output.
# Written for bash 3.2 and later (macOS included).
# shellcheck disable=SC2317  # the step_* functions are called through `step NAME FUNCTION`
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/smoke.sh [--stack-name NAME] [--region REGION] [--webhook-url URL] [--api-url URL]

Exercise a deployed Success Metrics stack end to end and report each step as PASS/FAIL/SKIP.
It creates a throwaway organization "smoke-test <time>" (smctl has no command to delete one);
its admin key and webhook destination are removed at the end, the organization stays.

Options:
  --stack-name NAME  CloudFormation stack (default: success-metrics)
  --region REGION    AWS region (default: AWS_DEFAULT_REGION, else the AWS CLI's configuration)
  --webhook-url URL  a public https endpoint that accepts any POST (a request bin): configured
                     as the organization's customer webhook, so the sync step can see deliveries;
                     without it the sync step is skipped
  --api-url URL      the HTTP API base URL (default: the stack's ApiUrl output, read with
                     `aws cloudformation describe-stacks`)
  -h, --help         this help

Steps: api-url, org, destination, ingest, sync, metrics, export, erasure, cleanup.

Environment: SMCTL (the smctl to run; default: smctl on PATH, else .venv/bin/smctl),
SMOKE_SYNC_WAIT (120), SMOKE_METRICS_WAIT (120), SMOKE_EXPORT_WAIT (300),
SMOKE_ERASURE_WAIT (300): the longest each step waits, in seconds.
Exit status: 0 when no step failed, 1 when one did, 2 on a usage or prerequisite error.
EOF
}

STACK_NAME=success-metrics
REGION=${AWS_DEFAULT_REGION:-}
WEBHOOK_URL=
API_URL=
while [ $# -gt 0 ]; do
  case $1 in
    --stack-name) [ $# -ge 2 ] || { echo "smoke: --stack-name needs a value" >&2; exit 2; }
      STACK_NAME=$2; shift 2 ;;
    --region) [ $# -ge 2 ] || { echo "smoke: --region needs a value" >&2; exit 2; }
      REGION=$2; shift 2 ;;
    --webhook-url) [ $# -ge 2 ] || { echo "smoke: --webhook-url needs a value" >&2; exit 2; }
      WEBHOOK_URL=$2; shift 2 ;;
    --api-url) [ $# -ge 2 ] || { echo "smoke: --api-url needs a value" >&2; exit 2; }
      API_URL=${2%/}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "smoke: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

SYNC_WAIT=${SMOKE_SYNC_WAIT:-120}
METRICS_WAIT=${SMOKE_METRICS_WAIT:-120}
EXPORT_WAIT=${SMOKE_EXPORT_WAIT:-300}
ERASURE_WAIT=${SMOKE_ERASURE_WAIT:-300}
POLL=5

REPO=$(cd "$(dirname "$0")/.." && pwd)
SAMPLE=$REPO/events/samples/batch.json
DEST_ID=smoke-webhook

if [ -n "${SMCTL:-}" ]; then
  :
elif command -v smctl >/dev/null 2>&1; then
  SMCTL=smctl
else
  SMCTL=$REPO/.venv/bin/smctl
fi
for tool in "$SMCTL" curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "smoke: $tool not found" >&2; exit 2; }
done
if [ -z "$API_URL" ] && ! command -v aws >/dev/null 2>&1; then
  echo "smoke: the aws CLI is needed to read the ApiUrl output (or pass --api-url)" >&2
  exit 2
fi
[ -r "$SAMPLE" ] || { echo "smoke: cannot read $SAMPLE" >&2; exit 2; }

# Options every smctl command gets, after the command itself (argparse lets a subcommand's
# defaults override options given before it). --no-local: never the local stack's .local/stack.json.
SMCTL_OPTS=(--json --no-local --stack-name "$STACK_NAME")
AWS_OPTS=()
if [ -n "$REGION" ]; then
  SMCTL_OPTS+=(--region "$REGION")
  AWS_OPTS+=(--region "$REGION")
fi

umask 077
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smoke.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
HDR=$TMP/auth-header # "Authorization: Bearer <key>": read by curl -H @file, never on a command line

# ------------------------------------------------------------------ helpers

# pyj FILE EXPR [ARG...]: EXPR evaluated with d = the JSON document in FILE and a = the ARGs;
# prints strings as they are and anything else as JSON. Fails when FILE is not JSON.
PYJ='
import json, sys
with open(sys.argv[1]) as f:
    d = json.load(f)
a = sys.argv[3:]
v = eval(sys.argv[2])
print(v if isinstance(v, str) else json.dumps(v))
'
pyj() { python3 -c "$PYJ" "$@"; }

# one_line FILE: the reason a command or an answer gave, on one line (a problem document's
# detail, a JSON error, or the text), at most 200 characters.
ONE_LINE='
import json, sys
text = open(sys.argv[1], errors="replace").read().strip()
try:
    d = json.loads(text)
    if isinstance(d, dict):
        text = str(d.get("detail") or d.get("title") or d.get("error") or text)
except ValueError:
    pass
lines = [l.strip() for l in text.splitlines() if l.strip()]
print((lines[-1] if lines else "no output")[:200])
'
one_line() { python3 -c "$ONE_LINE" "$1"; }

# smctl_run OUT CMD...: run smctl CMD... --json ...; stdout to OUT, stderr to $TMP/err.
smctl_run() {
  local out=$1
  shift
  "$SMCTL" "$@" "${SMCTL_OPTS[@]}" >"$out" 2>"$TMP/err"
}

# api METHOD PATH [BODY_FILE]: call the HTTP API with the throwaway key; the answer's body is in
# $TMP/body, its status in HTTP_CODE (000 when curl could not reach it; $TMP/body then says why).
api() {
  local method=$1 path=$2 data=${3:-}
  local args=(-sS --max-time 30 -X "$method" -H @"$HDR" -o "$TMP/body" -w '%{http_code}')
  if [ -n "$data" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary @"$data")
  fi
  if ! HTTP_CODE=$(curl "${args[@]}" "$API_URL$path" 2>"$TMP/curl.err"); then
    HTTP_CODE=000
    cp "$TMP/curl.err" "$TMP/body"
  fi
}

NAMES=()
RESULTS=()
TIMES=()
REASONS=()
FAILED=0
CURRENT=
STARTED=0
RESULT=
REASON=

pass() { RESULT=PASS; REASON=$1; }
fail() { RESULT=FAIL; REASON=$1; }
skip() { RESULT=SKIP; REASON=$1; }

# step NAME FUNCTION: run one step, time it, record and print its result.
step() {
  local name=$1 fn=$2 start=$SECONDS
  CURRENT=$name
  STARTED=$start
  RESULT=FAIL
  REASON="the step stopped without a result"
  echo "... $name" >&2
  "$fn" || true # a step sets RESULT and REASON itself; it never stops the script
  local took=$((SECONDS - start))
  NAMES+=("$name")
  RESULTS+=("$RESULT")
  TIMES+=("$took")
  REASONS+=("$REASON")
  CURRENT=
  [ "$RESULT" != FAIL ] || FAILED=1
  printf '%-4s  %-11s %4ss  %s\n' "$RESULT" "$name" "$took" "$REASON"
}

# ------------------------------------------------------------------ what the sample holds

# Sent with --fresh-ids, so the event ids are new on every run; the dates and users stay.
FACTS=$(pyj "$SAMPLE" '
(lambda ev: " ".join(str(x) for x in [
    len(ev),
    len({e["user_id"] for e in ev if e.get("type") == "user.signed_up" and e.get("user_id")}),
    len({e["user_id"] for e in ev if e.get("user_id")}),
    min(e["occurred_at"][:10] for e in ev),
    max(e["occurred_at"][:10] for e in ev),
    ev[0]["user_id"],
    sum(1 for e in ev if e.get("user_id") == ev[0]["user_id"]),
]))(d["events"] if isinstance(d, dict) and "events" in d else [d])') || {
  echo "smoke: $SAMPLE is not the event file expected" >&2
  exit 2
}
read -r N_EVENTS N_SIGNUPS N_USERS DATE_FROM DATE_TO ERASE_USER ERASE_USER_EVENTS <<EOF
$FACTS
EOF
# Events are counted and exported by the day they occurred (UTC); the sample's occurred_at dates
# are fixed, so the metrics and the export ask for those days. The dates are the first 10
# characters of occurred_at: the sample writes them in UTC ("Z").

# ------------------------------------------------------------------ steps

ORG_ID=
KEY_ID=
API_KEY=
WEBHOOK_SECRET=
DEST_SET=
ACCEPTED=0
EXPORT_ID=
EXPORT_STATUS=
CLEANED=

step_api_url() {
  if [ -n "$API_URL" ]; then
    pass "$API_URL (given)"
    return
  fi
  local found
  if ! found=$(aws cloudformation describe-stacks --stack-name "$STACK_NAME" ${AWS_OPTS[@]+"${AWS_OPTS[@]}"} \
    --query "Stacks[0].Outputs[?OutputKey=='ApiUrl'].OutputValue | [0]" --output text 2>"$TMP/err"); then
    fail "cannot read stack $STACK_NAME: $(one_line "$TMP/err")"
    return
  fi
  if [ -z "$found" ] || [ "$found" = None ]; then
    fail "stack $STACK_NAME has no ApiUrl output"
    return
  fi
  API_URL=${found%/}
  pass "$API_URL (stack output ApiUrl)"
}

step_org() {
  [ -n "$API_URL" ] || { skip "no API URL"; return; }
  local out=$TMP/org.json
  if ! smctl_run "$out" org create "smoke-test $(date -u +%Y-%m-%dT%H:%M:%SZ)"; then
    fail "smctl org create: $(one_line "$TMP/err")"
    return
  fi
  ORG_ID=$(pyj "$out" 'd["org_id"]') || { fail "smctl org create answered: $(one_line "$out")"; return; }
  KEY_ID=$(pyj "$out" 'd["key_id"]')
  WEBHOOK_SECRET=$(pyj "$out" 'd["webhook_secret"]')
  API_KEY=$(pyj "$out" 'd["api_key"]')
  printf 'Authorization: Bearer %s\n' "$API_KEY" >"$HDR"
  # The new admin key must authorize at the API (a few tries: the key was just written).
  local tries=0
  while :; do
    api GET /v1/organization
    if [ "$HTTP_CODE" = 200 ] && [ "$(pyj "$TMP/body" 'd.get("org_id")' 2>/dev/null)" = "$ORG_ID" ]; then
      pass "created $ORG_ID; its admin key $KEY_ID authorizes (GET /v1/organization)"
      return
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 6 ]; then
      fail "created $ORG_ID, but GET /v1/organization with its key: HTTP $HTTP_CODE $(one_line "$TMP/body")"
      return
    fi
    sleep 3
  done
}

step_destination() {
  [ -n "$ORG_ID" ] || { skip "no organization"; return; }
  [ -n "$WEBHOOK_URL" ] || { skip "no --webhook-url: no destination, so nothing to deliver"; return; }
  python3 -c 'import json, sys
print(json.dumps({"name": "smoke test", "enabled": True,
                  "settings": {"kind": "webhook", "url": sys.argv[1], "event_types": ["*"]}}))' \
    "$WEBHOOK_URL" >"$TMP/dest.json"
  api PUT "/v1/destinations/$DEST_ID" "$TMP/dest.json"
  if [ "$HTTP_CODE" != 200 ]; then
    fail "PUT /v1/destinations/$DEST_ID: HTTP $HTTP_CODE $(one_line "$TMP/body")"
    return
  fi
  DEST_SET=1
  pass "webhook destination $DEST_ID -> $WEBHOOK_URL (PUT /v1/destinations/$DEST_ID)"
}

step_ingest() {
  [ -n "$ORG_ID" ] || { skip "no organization"; return; }
  local out=$TMP/send.json
  SM_WEBHOOK_SECRET=$WEBHOOK_SECRET smctl_run "$out" send "$SAMPLE" --fresh-ids \
    --org "$ORG_ID" --api-url "$API_URL" || true # it exits 1 on an HTTP error, after its answer
  local status
  if ! status=$(pyj "$out" 'd["status"]' 2>/dev/null); then
    fail "smctl send: $(one_line "$TMP/err")"
    return
  fi
  ACCEPTED=$(pyj "$out" 'd["response"].get("accepted", 0) if isinstance(d["response"], dict) else 0')
  local rest
  rest=$(pyj "$out" '"duplicates %s, rejected %s" % (d["response"].get("duplicates"), len(d["response"].get("rejected") or [])) if isinstance(d["response"], dict) else ""')
  if [ "$status" != 202 ]; then
    fail "POST /v1/organizations/$ORG_ID/events: HTTP $status $(pyj "$out" 'json.dumps(d["response"])[:150]')"
  elif [ "$ACCEPTED" -ne "$N_EVENTS" ]; then
    fail "HTTP 202 but accepted $ACCEPTED of $N_EVENTS events ($rest)"
  else
    pass "HTTP 202, accepted $ACCEPTED of $N_EVENTS events ($rest)"
  fi
}

step_sync() {
  [ -n "$WEBHOOK_URL" ] || { skip "no --webhook-url: without a destination there is nothing to deliver"; return; }
  [ -n "$DEST_SET" ] || { skip "no destination"; return; }
  [ "$ACCEPTED" -gt 0 ] || { skip "no event was accepted"; return; }
  local deadline=$((SECONDS + SYNC_WAIT)) seen
  while :; do
    api GET "/v1/deliveries?limit=100"
    if [ "$HTTP_CODE" = 200 ]; then
      seen=$(pyj "$TMP/body" '
(lambda mine: "" if not mine else "%d delivery(ies), %d event(s), %d attempt(s), last status %s%s" % (
    len(mine), sum(len(x.get("event_ids") or []) for x in mine), sum(int(x.get("attempts") or 0) for x in mine),
    mine[0].get("status"),
    "" if mine[0].get("status") in ("succeeded", "partial") else " (%s%s: check the endpoint)" % (
        "HTTP %s" % mine[0]["status_code"] if mine[0].get("status_code") else "no HTTP answer",
        ", " + str(mine[0]["error"])[:80] if mine[0].get("error") else "")
))([x for x in d["deliveries"] if x.get("dest_id") == a[0] and int(x.get("attempts") or 0) >= 1])' "$DEST_ID")
      if [ -n "$seen" ]; then
        pass "delivery log (GET /v1/deliveries): $seen"
        return
      fi
    elif [ "$HTTP_CODE" != 000 ] && [ "${HTTP_CODE:0:1}" = 4 ]; then
      fail "GET /v1/deliveries: HTTP $HTTP_CODE $(one_line "$TMP/body")"
      return
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      fail "no delivery attempt to $DEST_ID in the delivery log after ${SYNC_WAIT}s (last answer HTTP $HTTP_CODE)"
      return
    fi
    sleep "$POLL"
  done
}

step_metrics() {
  [ -n "$ORG_ID" ] || { skip "no organization"; return; }
  [ "$ACCEPTED" -gt 0 ] || { skip "no event was accepted"; return; }
  local deadline=$((SECONDS + METRICS_WAIT)) counts signups active
  while :; do
    api GET "/v1/metrics?from=$DATE_FROM&to=$DATE_TO&granularity=day"
    if [ "$HTTP_CODE" = 200 ]; then
      counts=$(pyj "$TMP/body" '"%d %d" % (d["totals"]["signups"]["total"], sum(p["metrics"]["active_users"] for p in d["periods"]))')
      read -r signups active <<EOF
$counts
EOF
      if [ "$signups" -ge "$N_SIGNUPS" ] && [ "$active" -ge "$N_USERS" ]; then
        pass "$DATE_FROM..$DATE_TO by day: $signups signup(s) (expected $N_SIGNUPS), $active active user-day(s) (expected $N_USERS)"
        return
      fi
    elif [ "$HTTP_CODE" != 000 ] && [ "${HTTP_CODE:0:1}" = 4 ]; then
      fail "GET /v1/metrics: HTTP $HTTP_CODE $(one_line "$TMP/body")"
      return
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      if [ "$HTTP_CODE" = 200 ]; then
        fail "after ${METRICS_WAIT}s the counters show $signups of $N_SIGNUPS signup(s), $active of $N_USERS active user(s)"
      else
        fail "GET /v1/metrics after ${METRICS_WAIT}s: HTTP $HTTP_CODE $(one_line "$TMP/body")"
      fi
      return
    fi
    sleep "$POLL"
  done
}

step_export() {
  [ -n "$ORG_ID" ] || { skip "no organization"; return; }
  local out=$TMP/export.json
  SM_API_KEY=$API_KEY smctl_run "$out" export create --dataset events --format csv \
    --from "$DATE_FROM" --to "$DATE_TO" --wait --timeout "$EXPORT_WAIT" --api-url "$API_URL" || true
  if ! EXPORT_ID=$(pyj "$out" 'd["id"]' 2>/dev/null); then
    # On a --wait timeout smctl says "smctl: <id> is still running after N s": keep the id so
    # that the cleanup cancels the export.
    EXPORT_ID=$(sed -n 's/^smctl: \([^ ]*\) is still .*/\1/p' "$TMP/err")
    fail "smctl export create: $(one_line "$TMP/err")"
    return
  fi
  local rows
  EXPORT_STATUS=$(pyj "$out" 'd["status"]')
  if [ "$EXPORT_STATUS" != succeeded ]; then
    fail "export $EXPORT_ID ended $EXPORT_STATUS: $(pyj "$out" 'd.get("error") or "no error given"')"
    return
  fi
  rows=$(pyj "$out" '(d.get("file") or {}).get("rows", d["progress"]["rows"])')
  if [ "$rows" -lt "$ACCEPTED" ]; then
    fail "export $EXPORT_ID succeeded with $rows row(s); $ACCEPTED event(s) were accepted"
    return
  fi
  local answer code location
  answer=$(curl -sS --max-time 30 -H @"$HDR" -o "$TMP/body" -w '%{http_code} %{redirect_url}' \
    "$API_URL/v1/exports/$EXPORT_ID/download" 2>"$TMP/curl.err") || answer="000 "
  code=${answer%% *}
  location=${answer#* }
  if [ "$code" != 302 ] || [ -z "$location" ]; then
    fail "export $EXPORT_ID succeeded ($rows rows) but GET /download answered $code, not a 302"
    return
  fi
  # The presigned link must serve the very file the job describes (size and SHA-256).
  code=$(curl -sS --max-time 60 -o "$TMP/export.csv" -w '%{http_code}' "$location" 2>"$TMP/curl.err") || code=000
  if [ "$code" != 200 ]; then
    fail "GET /download gave a 302, but its link answered $code"
    return
  fi
  local same
  same=$(python3 -c 'import hashlib, json, sys
job = json.load(open(sys.argv[1]))["file"]
data = open(sys.argv[2], "rb").read()
print("yes" if len(data) == job["bytes"] and hashlib.sha256(data).hexdigest() == job["sha256"] else "no")' \
    "$out" "$TMP/export.csv" 2>/dev/null) || same=no
  if [ "$same" != yes ]; then
    fail "the downloaded file does not match the job's bytes and SHA-256"
    return
  fi
  pass "$EXPORT_ID succeeded: $rows rows of csv; /download gave a 302 and the file matches its SHA-256"
}

step_erasure() {
  [ -n "$ORG_ID" ] || { skip "no organization"; return; }
  local out=$TMP/erasure.json id status
  SM_API_KEY=$API_KEY smctl_run "$out" gdpr erase "$ERASE_USER" --api-url "$API_URL" || {
    fail "smctl gdpr erase (POST /v1/gdpr/erasures): $(one_line "$TMP/err")"
    return
  }
  if ! id=$(pyj "$out" 'd["erasure_id"]'); then
    fail "POST /v1/gdpr/erasures answered: $(one_line "$out")"
    return
  fi
  SM_API_KEY=$API_KEY smctl_run "$out" gdpr erasure "$id" --wait --timeout "$ERASURE_WAIT" \
    --api-url "$API_URL" || true # exits 1 when it ends otherwise than succeeded, after its answer
  if ! status=$(pyj "$out" 'd["status"]' 2>/dev/null); then
    fail "erasure $id of $ERASE_USER: $(one_line "$TMP/err")"
    return
  fi
  local systems erased
  systems=$(pyj "$out" '" ".join("%s=%s" % (k, v["status"]) for k, v in d["systems"].items() if v["status"] != "done") or "all systems done"')
  erased=$(pyj "$out" 'd["systems"]["events"]["count"]')
  if [ "$status" != succeeded ]; then
    fail "erasure $id of $ERASE_USER ended $status: $systems"
  elif [ "$ACCEPTED" -gt 0 ] && [ "$erased" -lt "$ERASE_USER_EVENTS" ]; then
    fail "erasure $id succeeded but erased $erased event(s) of $ERASE_USER; the sample sent $ERASE_USER_EVENTS"
  else
    pass "erasure $id of $ERASE_USER succeeded: $erased event(s) erased, $systems"
  fi
}

step_cleanup() {
  [ -n "$ORG_ID" ] || { skip "nothing was created"; return; }
  CLEANED=1
  local done_list="" problems=""
  if [ -n "$DEST_SET" ]; then
    api DELETE "/v1/destinations/$DEST_ID"
    case $HTTP_CODE in
      2??) done_list="$done_list, destination removed" ;;
      *) problems="$problems; DELETE /v1/destinations/$DEST_ID: HTTP $HTTP_CODE $(one_line "$TMP/body")" ;;
    esac
  fi
  # A succeeded export: withdraw its file (if the erasure has not already); one still queued or
  # running (a --wait timeout): cancel it. A failed one has nothing left to cancel.
  if [ -n "$EXPORT_ID" ] && [ "$EXPORT_STATUS" != failed ] && [ "$EXPORT_STATUS" != cancelled ]; then
    if SM_API_KEY=$API_KEY smctl_run "$TMP/cancel.json" export cancel "$EXPORT_ID" \
      --api-url "$API_URL"; then
      done_list="$done_list, export file withdrawn"
    else
      problems="$problems; smctl export cancel $EXPORT_ID: $(one_line "$TMP/err")"
    fi
  fi
  if smctl_run "$TMP/revoke.json" key revoke "$ORG_ID" "$KEY_ID"; then
    done_list="$done_list, key $KEY_ID revoked"
  else
    problems="$problems; smctl key revoke $ORG_ID $KEY_ID: $(one_line "$TMP/err")"
  fi
  if [ -n "$problems" ]; then
    fail "${problems#; }"
  else
    pass "${done_list#, }; organization $ORG_ID stays (no delete command)"
  fi
}

summary() {
  echo
  printf '%-4s  %-11s %5s  %s\n' result step time reason
  local i
  for i in "${!NAMES[@]}"; do
    printf '%-4s  %-11s %4ss  %s\n' "${RESULTS[$i]}" "${NAMES[$i]}" "${TIMES[$i]}" "${REASONS[$i]}"
  done
  if [ -n "$ORG_ID" ]; then
    echo
    echo "throwaway organization: $ORG_ID (stack $STACK_NAME)"
  fi
  if [ $FAILED -ne 0 ]; then
    echo "smoke test FAILED"
  else
    echo "smoke test passed"
  fi
}

interrupted() {
  trap - INT TERM
  echo "smoke: interrupted" >&2
  if [ -n "$CURRENT" ]; then
    NAMES+=("$CURRENT")
    RESULTS+=(FAIL)
    TIMES+=($((SECONDS - STARTED)))
    REASONS+=("interrupted")
  fi
  FAILED=1
  [ -n "$CLEANED" ] || step cleanup step_cleanup
  summary
  exit 130
}
trap interrupted INT TERM

echo "smoke test of stack $STACK_NAME${REGION:+ in $REGION}"
step api-url step_api_url
step org step_org
step destination step_destination
step ingest step_ingest
step sync step_sync
step metrics step_metrics
step export step_export
step erasure step_erasure
step cleanup step_cleanup
summary
exit $FAILED
