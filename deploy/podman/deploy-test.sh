#!/usr/bin/env bash
# make deploy-test: deploy/compose.yaml under a real container engine (podman), end to end.
#   1. a Debian base image (debootstrap + podman import; cached), both images on it, and
#      stand-in Redis, PostgreSQL and mail images from Debian's packages;
#   2. compose up (podman-compose), waits for every healthcheck;
#   3. the README's first walk against the containers;
#   4. the policy worker scaled to 2: both take work;
#   5. a policy worker killed in the middle of an execution: it completes exactly once;
#   6. tears down its own containers, network and volumes (also on failure).
# Needs root, podman, runc and debootstrap (apt-get install -y podman runc debootstrap)
# and podman-compose (in .venv via make install). Secrets are generated per run.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
START=$(date +%s)
export CONTAINERS_CONF=$ROOT/deploy/podman/containers.conf
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-govdeploytest}
COMPOSE=("$ROOT/.venv/bin/podman-compose" -f "$ROOT/deploy/compose.yaml")
BASE=localhost/debian:bookworm
TAG=deploy-test
export API_IMAGE=localhost/governance-api:$TAG WORKFLOW_IMAGE=localhost/governance-workflow:$TAG
export REDIS_IMAGE=localhost/standin-redis:$TAG POSTGRES_IMAGE=localhost/standin-postgres:$TAG
export MAIL_IMAGE=localhost/standin-mail:$TAG
export API_PORT=${DEPLOY_TEST_API_PORT:-18000} WORKFLOW_PORT=${DEPLOY_TEST_WORKFLOW_PORT:-18001}
export MAIL_WEB_PORT=${DEPLOY_TEST_MAIL_PORT:-18025}
export WORKER_HEARTBEAT_TIMEOUT_MS=5000 WEB_ACCESS_LOG=- WEB_WORKERS=2
# Obviously fake secrets, new each run; the token commands below sign with the same ones.
gen() { python3 -c 'import secrets; print("deploytest-fake-" + secrets.token_hex(24))'; }
JWT_SECRET=$(gen) SERVICE_TOKEN_SECRET=$(gen) WEBHOOK_SECRET=$(gen)
POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
export JWT_SECRET SERVICE_TOKEN_SECRET WEBHOOK_SECRET POSTGRES_PASSWORD

step() { echo; echo "== deploy-test [$(( $(date +%s) - START ))s] $*"; }
fail() {
    echo "deploy-test FAILED: $*" >&2
    exit 1
}
ctr() { podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
        --filter "label=com.docker.compose.service=$1" --format '{{.Names}}' | sort; }

cleanup() {
    rc=$?
    set +e
    if [ "$rc" != 0 ]; then
        echo "--- container states and last log lines (for the failure above)"
        podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" \
            --format '{{.Names}} {{.Status}}'
        for c in $(podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" --format '{{.Names}}'); do
            echo "--- $c"; podman logs --tail 15 "$c" 2>&1
        done
    fi
    step "teardown"
    for c in $(podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" --format '{{.Names}}'); do
        podman unpause "$c" >/dev/null 2>&1
    done
    "${COMPOSE[@]}" down -v -t 5 >/dev/null 2>&1
    podman rm -f $(podman ps -aq --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME") >/dev/null 2>&1
    podman volume rm $(podman volume ls -q --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME") >/dev/null 2>&1
    podman network rm "${COMPOSE_PROJECT_NAME}_default" >/dev/null 2>&1
    podman image prune -f >/dev/null 2>&1
    echo "deploy-test: $([ "$rc" = 0 ] && echo passed || echo failed) in $(( $(date +%s) - START ))s"
    exit "$rc"
}

step "prerequisites"
[ "$(id -u)" = 0 ] || fail "run as root (podman's rootful mode is what was tried here)"
for tool in podman runc debootstrap; do
    command -v $tool >/dev/null || fail "$tool is missing: apt-get install -y podman runc debootstrap"
done
[ -x "${COMPOSE[0]}" ] || fail "podman-compose is missing from .venv: run make install"
[ -x .venv/bin/python ] || fail ".venv is missing: run make install"
trap cleanup EXIT
# A run that died before its teardown leaves its containers: remove them first.
"${COMPOSE[@]}" down -v -t 2 >/dev/null 2>&1 || true

step "base image"
deploy/podman/base-image.sh "$BASE" || fail "could not build the Debian base image"

build() {  # build NAME ARGS...: one build at a time, niced
    local t0=$(date +%s)
    nice podman build -q --format docker --build-arg "BASE_IMAGE=$BASE" "$@" >/tmp/deploy-test-build.$$ 2>&1 \
        || { tail -30 /tmp/deploy-test-build.$$; rm -f /tmp/deploy-test-build.$$; return 1; }
    rm -f /tmp/deploy-test-build.$$
    echo "built $1 $2 in $(( $(date +%s) - t0 ))s"
}
step "images"
CA=${PIP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
for target in api workflow; do
    image=localhost/governance-$target:$TAG
    build -t "$image" -f deploy/Dockerfile --target $target --secret "id=pip_ca,src=$CA" . \
        || fail "building the $target image failed (log above)"
done
for s in redis postgres mail; do
    build -t "localhost/standin-$s:$TAG" -f deploy/podman/standins/$s.Containerfile deploy/podman/standins \
        || fail "building the stand-in $s image failed (log above)"
done
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep ":$TAG" | sed 's/^/  /'

# Podman runs healthchecks from systemd timers, which these machines do not have: run each
# container's own healthcheck here until every long-running one is healthy, and every
# migration has exited 0.
wait_healthy() {  # wait_healthy SECONDS
    local deadline=$(( $(date +%s) + $1 )) pending
    while :; do
        pending=""
        for c in $(podman ps -a --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" --format '{{.Names}}'); do
            case $c in *migrate*)
                state=$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$c")
                [ "$state" = "exited 0" ] || pending="$pending $c($state)"
                continue;;
            esac
            if podman healthcheck run "$c" >/dev/null 2>&1; then :; else pending="$pending $c"; fi
        done
        [ -z "$pending" ] && return 0
        [ "$(date +%s)" -ge "$deadline" ] && { echo "not healthy after $1s:$pending"; return 1; }
        sleep 2
    done
}
up() {  # up SERVICE...: create and start them (podman-compose), log shown on failure
    "${COMPOSE[@]}" up -d --no-deps "$@" >/tmp/deploy-test-up.$$ 2>&1 \
        || { grep -v systemd /tmp/deploy-test-up.$$ | tail -40; rm -f /tmp/deploy-test-up.$$; return 1; }
    rm -f /tmp/deploy-test-up.$$
}
step "compose up"
# The compose file's depends_on conditions, one level at a time: Debian 12's podman (4.3)
# ignores service_healthy, and its --requires graph fails on chained dependencies, so the
# levels start here in the order a compose engine with health conditions starts them.
up redis api-db workflow-db mail || fail "podman-compose up (redis, databases, mail) failed"
wait_healthy 120 || fail "Redis, the databases or the mail catcher did not become healthy"
up api-migrate workflow-migrate || fail "podman-compose up (migrations) failed"
wait_healthy 120 || fail "a migration did not finish with exit code 0"
up api-web api-relay workflow-web workflow-scheduler worker-policy worker-entities \
    worker-notification worker-batch || fail "podman-compose up (services) failed"
wait_healthy 180 || fail "services did not become healthy"
echo "every service healthy: $(podman ps --filter "label=io.podman.compose.project=$COMPOSE_PROJECT_NAME" --format '{{.Names}}' | wc -l) containers"

# Helpers of the walk (the README's own) and this test's polls.
json() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1:]: v=v[int(k)] if k.isdigit() else v[k]
print(v)' "$@"; }
poll() {  # poll SECONDS WHAT COMMAND...: until COMMAND succeeds
    local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -ge "$deadline" ] && fail "timed out after ${deadline}s waiting for: $what"
        sleep 0.5
    done
}
API=localhost:$API_PORT WF=localhost:$WORKFLOW_PORT
tokt() { .venv/bin/python -m api_service token --sub "$1" --roles "$2" --tenant "$3"; }

step "the README's first walk"
WEB=$(ctr workflow-web | head -1)
podman exec -i "$WEB" python3 -m workflow_service users import /dev/stdin --tenant acme \
    <deploy/local/demo-users.yaml >/dev/null || fail "could not import the demo users"
# The walk's block from the README, with the ports this test published.
python3 - "$API_PORT" "$WORKFLOW_PORT" >/tmp/deploy-test-walk.$$ <<'PY' || fail "could not find the walk in README.md"
import re, sys
text = open("README.md").read()
block = text.split("### A first walk", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
block = block.replace("localhost:8000", f"localhost:{sys.argv[1]}")
block = block.replace("localhost:8001", f"localhost:{sys.argv[2]}")
# Steps 3 and 4 read what the workers did after step 2 and 3: wait for it, as a person would.
block = block.replace("\n# 3.", '\nwalk_wait_approval\n# 3.', 1)
block = block.replace("\n# 4.", '\nwalk_wait_decided\n# 4.', 1)
assert "walk_wait_approval" in block and "walk_wait_decided" in block
print(block)
PY
walk_wait_approval() {
    poll 60 "the approval the review asks for" \
        sh -c "curl -sf '$WF/approvals?status=pending' -H 'Authorization: Bearer $BOB' | grep -q '\"id\"'"
}
walk_wait_decided() {
    poll 60 "the policy approved" \
        sh -c "curl -sf $API/policies/$P -H 'Authorization: Bearer $ALICE' | grep -q '\"status\": *\"approved\"'"
    poll 60 "the review job's tree to finish" \
        sh -c "curl -sf $API/jobs/$JOB -H 'Authorization: Bearer $ALICE' | grep -q '\"tree_state\": *\"succeeded\"'"
}
WALK_OUT=$(set -e; source /tmp/deploy-test-walk.$$ 2>&1) || { echo "$WALK_OUT"; fail "the README walk failed"; }
rm -f /tmp/deploy-test-walk.$$
echo "$WALK_OUT" | sed 's/^/  | /'
echo "$WALK_OUT" | grep -qx "approved" || fail "walk: the policy is not approved"
echo "$WALK_OUT" | grep -qx "bob" || fail "walk: bob is not on record as the approver"
[ "$(echo "$WALK_OUT" | tail -1)" = "succeeded" ] || fail "walk: the review job's tree did not succeed"

step "scale the policy worker to 2"
"${COMPOSE[@]}" up -d --no-deps --no-recreate --scale worker-policy=2 worker-policy >/dev/null 2>&1 \
    || fail "podman-compose could not scale worker-policy"
mapfile -t WORKERS < <(ctr worker-policy)
[ "${#WORKERS[@]}" = 2 ] || fail "expected 2 worker-policy containers, found ${#WORKERS[@]}"
wait_healthy 90 || fail "the second policy worker did not become healthy"
T=deploytest
ADMIN=$(tokt ada admin $T) EDITOR=$(tokt ed editor $T)
J='content-type: application/json'
curl -sf -XPOST "$WF/workflows" -H "Authorization: Bearer $ADMIN" -H "$J" -d '{"name": "to review",
     "entity_type": "policy", "trigger": "on_create", "status": "active",
     "steps": [{"kind": "change_status", "name": "send to review", "to": "in_review"}]}' \
     >/dev/null || fail "could not add the test workflow"
N=24
seq $N | xargs -P 8 -I{} curl -sf -o /dev/null -XPOST "$API/policies" -H "Authorization: Bearer $EDITOR" \
    -H "$J" -d '{"title": "Load {}", "policy_type": "security", "owner": "ed"}' \
    || fail "creating $N policies failed"
completed() { [ "$(curl -sf "$WF/executions?status=completed&limit=200" -H "Authorization: Bearer $ADMIN" \
                  | json items | python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.stdin.read())))')" -ge "$1" ]; }
poll 120 "$N executions completed" completed $N
# Each change_status is an HTTP call from the worker that ran it: the api's access log
# names the caller's address.
API_WEB=$(ctr api-web | head -1)
for w in "${WORKERS[@]}"; do
    ip=$(podman inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$w")
    calls=$(podman logs "$API_WEB" 2>&1 | grep "^$ip " | grep -c "POST /policies/.*/transitions" || true)
    echo "  $w ($ip) ran $calls change_status calls"
    [ "$calls" -gt 0 ] || fail "$w took no work"
done

step "kill a policy worker in the middle of an execution"
# Hold both workers, write a policy (its event waits in the queue), hold the api, release
# the workers: the one that takes the execution blocks in its change_status call.
# Idle keep-alive connections to the api close after gunicorn's keepalive (5 s), so an
# open connection below means a call in progress.
sleep 6
for w in "${WORKERS[@]}"; do podman pause "$w" >/dev/null; done
K=$(curl -sf -XPOST "$API/policies" -H "Authorization: Bearer $EDITOR" -H "$J" \
     -d '{"title": "Killed midway", "policy_type": "security", "owner": "ed"}' | json id) \
     || fail "could not write the policy"
podman pause "$API_WEB" >/dev/null
for w in "${WORKERS[@]}"; do podman unpause "$w" >/dev/null; done
exec_field() { curl -sf "$WF/executions?entity_id=$K" -H "Authorization: Bearer $ADMIN" | json items 0 "$1"; }
poll 60 "the execution to start" sh -c "[ \"\$(curl -sf '$WF/executions?entity_id=$K' -H 'Authorization: Bearer $ADMIN' | grep -o '\"status\": *\"running\"')\" ]"
# The worker with an open connection to the api's port (8000 = 1F40) is the one running it.
VICTIM=""
for i in $(seq 40); do
    for w in "${WORKERS[@]}"; do
        if podman exec "$w" sh -c 'grep -q ":1F40 01" /proc/net/tcp' 2>/dev/null; then VICTIM=$w; break 2; fi
    done
    sleep 0.25
done
[ -n "$VICTIM" ] || fail "no policy worker is in the middle of the change_status call"
echo "  $VICTIM runs execution $(exec_field id) (status $(exec_field status)): killing it"
podman kill -s KILL "$VICTIM" >/dev/null
podman unpause "$API_WEB" >/dev/null
poll 90 "the execution to complete on the other worker" sh -c "[ \"\$(curl -sf '$WF/executions?entity_id=$K' -H 'Authorization: Bearer $ADMIN' | grep -o '\"status\": *\"completed\"')\" ]"
COUNT=$(curl -sf "$WF/executions?entity_id=$K" -H "Authorization: Bearer $ADMIN" | json items | python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.stdin.read())))')
[ "$COUNT" = 1 ] || fail "$COUNT executions for the policy, expected 1"
ATTEMPTS=$(exec_field attempts)
[ "$ATTEMPTS" -ge 2 ] || fail "the execution was claimed $ATTEMPTS time(s): it was not redelivered"
STATUS=$(curl -sf "$API/policies/$K" -H "Authorization: Bearer $EDITOR" | json status)
VERSIONS=$(curl -sf "$API/policies/$K/versions" -H "Authorization: Bearer $EDITOR" | json items | python3 -c 'import ast,sys; print(len(ast.literal_eval(sys.stdin.read())))')
[ "$STATUS" = in_review ] || fail "the policy is $STATUS, expected in_review"
[ "$VERSIONS" = 2 ] || fail "the policy has $VERSIONS versions, expected 2 (the change ran once)"
echo "  completed after $ATTEMPTS claims; one execution, policy in_review, $VERSIONS versions: exactly once"

step "all checks passed"
