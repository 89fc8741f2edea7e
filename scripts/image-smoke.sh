#!/usr/bin/env bash
# Proves that linsync's container image runs: builds it (make image), then, in containers with host networking,
# runs `linsync migrate` against a fresh database of its own on the local Postgres, creates a workspace with a
# webhook secret, starts `linsync all` hardened the way deploy/k8s runs it (read-only root, tmpfs /tmp, no
# capabilities, no privilege escalation), posts a signed Linear webhook and checks that its LinearDelivery workflow
# completed in a Temporal dev server started here on non-default ports, and that the delivery was recorded.
#
# Not part of `make test` (it needs Podman): scripts/image-smoke.sh. It prints PASS or FAIL, exits non-zero on
# failure, and always removes its container, its Temporal server and its database.
#
# Environment: IMAGE (default localhost/linsync:smoke), SMOKE_DB (linsync_smoke), SMOKE_TEMPORAL_PORT (17233),
# SMOKE_HTTP_PORT (18080), SMOKE_OPS_PORT (19090), GO_BUILD_TAGS (passed to make image), CONTAINERS_CONF (default deploy/podman/containers.conf).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

IMAGE=${IMAGE:-localhost/linsync:smoke}
DB=${SMOKE_DB:-linsync_smoke}
TEMPORAL_PORT=${SMOKE_TEMPORAL_PORT:-17233}
HTTP_PORT=${SMOKE_HTTP_PORT:-18080}
OPS_PORT=${SMOKE_OPS_PORT:-19090}
PG=postgres://postgres@127.0.0.1:5432
TEMPORAL=$root/.cache/bin/temporal
export CONTAINERS_CONF=${CONTAINERS_CONF:-$root/deploy/podman/containers.conf}
export PGOPTIONS="-c client_min_messages=warning" # no NOTICE for DROP DATABASE IF EXISTS

name=linsync-smoke-$$
work=$(mktemp -d)
started=$(date +%s)
temporal_pid=
db_created=no
passed=no

say() { printf 'image-smoke: %s\n' "$*"; }
fail() { say "FAIL: $*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  if [ "$passed" != yes ]; then
    if podman container exists "$name" 2>/dev/null; then
      say "last lines of the linsync container's log:"
      podman logs --tail 40 "$name" 2>&1 | sed 's/^/  | /'
    fi
    if [ -s "$work/temporal.log" ]; then
      say "last lines of the Temporal dev server's log:"
      tail -n 15 "$work/temporal.log" | sed 's/^/  | /'
    fi
  fi
  podman rm -f -t 5 "$name" >/dev/null 2>&1
  if [ -n "$temporal_pid" ]; then
    kill "$temporal_pid" 2>/dev/null
    wait "$temporal_pid" 2>/dev/null
  fi
  if [ "$db_created" = yes ]; then
    psql "$PG/postgres" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 ||
      say "could not drop database $DB"
  fi
  rm -rf "$work"
  local took=$(($(date +%s) - started))
  if [ "$passed" = yes ]; then
    say "PASS (${took}s)"
  else
    say "FAIL (${took}s)"
    [ "$rc" -ne 0 ] || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS COMMAND...: retries COMMAND every half second; fails when it has not succeeded in time.
wait_for() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
running() { [ "$(podman inspect --format '{{.State.Running}}' "$name" 2>/dev/null)" = true ]; }
http_ok() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$HTTP_PORT$1"; }
ops_ok() { curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$OPS_PORT$1"; }
http_status() { curl -sS -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$HTTP_PORT$1"; }

for tool in podman curl psql openssl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (Podman: apt-get install podman buildah runc)"
done
for port in "$TEMPORAL_PORT" "$HTTP_PORT" "$OPS_PORT"; do
  port_free "$port" || fail "127.0.0.1:$port is in use; set SMOKE_TEMPORAL_PORT / SMOKE_HTTP_PORT / SMOKE_OPS_PORT"
done
[ -x "$TEMPORAL" ] || make temporal
scripts/ensure-postgres.sh

# --- the image ----------------------------------------------------------------------------------------------------
say "building $IMAGE (make image)"
make --no-print-directory image IMAGE="$IMAGE" >"$work/build.log" 2>&1 || { tail -n 30 "$work/build.log" >&2; fail "make image failed"; }
grep '^make image: ' "$work/build.log" | sed 's/^make image: /image-smoke: make image: /'
user=$(podman image inspect --format '{{.Config.User}}' "$IMAGE")
entrypoint=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$IMAGE")
[ "$user" = 65532:65532 ] || fail "image user is $user, want 65532:65532"
[ "$entrypoint" = '["/linsync"]' ] || fail "image entrypoint is $entrypoint, want [\"/linsync\"]"
podman create --name "$name" "$IMAGE" >/dev/null
podman export "$name" | tar -t >"$work/files"
podman rm "$name" >/dev/null
for f in linsync etc/passwd etc/group etc/ssl/certs/ca-certificates.crt usr/share/zoneinfo/Europe/Berlin tmp/; do
  grep -qx "$f" "$work/files" || fail "the image has no /$f"
done
say "image $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{ printf "%.1f MB", $1 / 1e6 }'), user $user, entrypoint $entrypoint, $(wc -l <"$work/files") files (binary, CA certificates, zoneinfo, passwd)"

# --- Temporal and Postgres ----------------------------------------------------------------------------------------
"$TEMPORAL" server start-dev --ip 127.0.0.1 --port "$TEMPORAL_PORT" --headless --log-level warn >"$work/temporal.log" 2>&1 &
temporal_pid=$!
wait_for 60 "$TEMPORAL" operator cluster health --address "127.0.0.1:$TEMPORAL_PORT" ||
  fail "the Temporal dev server did not come up on 127.0.0.1:$TEMPORAL_PORT"
say "Temporal dev server on 127.0.0.1:$TEMPORAL_PORT (pid $temporal_pid, UI disabled)"

psql "$PG/postgres" -qX -v ON_ERROR_STOP=1 -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" -c "CREATE DATABASE $DB" >/dev/null
db_created=yes
say "database $DB created"

secret=smoke-$(openssl rand -hex 16)
cat >"$work/env" <<EOF
DATABASE_URL=$PG/$DB?sslmode=disable
LINSYNC_SECRETS_KEY_URL=base64key://$(openssl rand -base64 32 | tr '+/' '-_')
TEMPORAL_ADDRESS=127.0.0.1:$TEMPORAL_PORT
TEMPORAL_NAMESPACE=default
LINSYNC_TASK_QUEUE=linsync-smoke
LINSYNC_HTTP_ADDR=127.0.0.1:$HTTP_PORT
LINSYNC_OPS_ADDR=127.0.0.1:$OPS_PORT
LINSYNC_LOG_LEVEL=info
EOF
# As deploy/k8s runs it: read-only root, a writable /tmp, no capabilities, no privilege escalation.
run=(podman run --runtime runc --network host --env-file "$work/env"
  --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges)

# --- linsync in the image -----------------------------------------------------------------------------------------
"${run[@]}" --rm "$IMAGE" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; fail "linsync migrate failed"; }
say "linsync migrate ok ($(psql "$PG/$DB" -qXtA -c 'SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()') tables)"

"${run[@]}" --rm -i "$IMAGE" workspace create --slug smoke --linear-org smoke-organization --webhook-secret-file - <<<"$secret" \
  >"$work/workspace.log" 2>&1 || { cat "$work/workspace.log" >&2; fail "linsync workspace create failed"; }
say "linsync workspace create ok (workspace smoke, organization smoke-organization)"

"${run[@]}" -d --name "$name" "$IMAGE" all >/dev/null
ready_or_exited() { ! running || ops_ok /readyz; }
wait_for 60 ready_or_exited || fail "/readyz on 127.0.0.1:$OPS_PORT did not answer 200 within 60s"
running || fail "linsync all exited with $(podman inspect --format '{{.State.ExitCode}}' "$name")"
ops_ok /healthz || fail "/healthz on the operations listener is not 200"
ops_ok /metrics || fail "/metrics on the operations listener is not 200"
http_ok /healthz || fail "/healthz on the API listener is not 200"
[ "$(http_status /metrics)" = 404 ] || fail "/metrics answers on the public API listener"
say "linsync all is up: /healthz 200 (both listeners), /readyz and /metrics 200 on :$OPS_PORT only"

delivery=$(cat /proc/sys/kernel/random/uuid)
post() {
  local body
  body='{"action":"create","type":"Issue","organizationId":"smoke-organization","webhookTimestamp":'$(date +%s%3N)',"data":{"id":"3f8c1e4a-5b6d-4e7f-8a9b-0c1d2e3f4a5b","title":"Hello from image-smoke","priority":2}}'
  curl -sS --max-time 10 -w '\n%{http_code}' -X POST "http://127.0.0.1:$HTTP_PORT/webhooks/linear/smoke" \
    -H 'Content-Type: application/json' \
    -H "Linear-Delivery: $delivery" \
    -H "Linear-Signature: $(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" -r | cut -d' ' -f1)" \
    --data-binary "$body"
}
answer=$(post)
say "webhook answered $(tail -n 1 <<<"$answer") $(head -n 1 <<<"$answer")"
if [ "$(tail -n 1 <<<"$answer")" != 200 ] || ! grep -q '"status":"accepted"' <<<"$answer"; then
  fail "webhook not accepted"
fi
# The answer names the workflow, linear-delivery:<workspace id>:<delivery id>; it starts right after the 200.
workflow=$(grep -o '"workflow_id":"linear-delivery:[0-9a-f-]*:'"$delivery"'"' <<<"$answer" | cut -d'"' -f4)
[ -n "$workflow" ] || fail "webhook answer does not name the workflow linear-delivery:<workspace>:$delivery: $answer"

status() {
  "$TEMPORAL" workflow describe --address "127.0.0.1:$TEMPORAL_PORT" --namespace default -w "$workflow" -o json 2>/dev/null |
    grep -o '"status": *"WORKFLOW_EXECUTION_STATUS_[A-Z_]*"' | head -n 1 | grep -o 'WORKFLOW_EXECUTION_STATUS_[A-Z_]*'
}
completed() { [ "$(status)" = WORKFLOW_EXECUTION_STATUS_COMPLETED ]; }
wait_for 60 completed || fail "workflow $workflow did not complete within 60s (status: $(status || echo unknown))"
say "workflow $workflow completed (temporal workflow describe)"
outcome=$(psql "$PG/$DB" -qXtA -c "SELECT outcome || ' ' || event_type || '/' || action FROM webhook_deliveries WHERE delivery_id = '$delivery'")
[ -n "$outcome" ] || fail "no webhook_deliveries row for $delivery"
say "webhook_deliveries row: $outcome"

answer=$(post)
grep -q '"status":"duplicate"' <<<"$answer" || fail "a second delivery of $delivery was not a duplicate: $answer"
say "same Linear-Delivery again: $(head -n 1 <<<"$answer")"

podman stop -t 30 "$name" >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || fail "linsync all exited $code after SIGTERM"
say "SIGTERM: linsync all stopped cleanly (exit 0)"
passed=yes
