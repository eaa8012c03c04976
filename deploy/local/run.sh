#!/usr/bin/env bash
# `make run`: the whole service on this machine, under honcho (Ctrl-C stops it all).
#   - Redis: the one on 127.0.0.1:6379 if it answers, else redis-server if installed.
#   - The reference key service on :8787.
#   - Without KEYSWEEP_GITHUB_TOKENS: the GitHub simulator on :8788, feeding traffic
#     with planted keys; with them: real GitHub.
#   - A worker per kind of queue and the scheduler, each logging to .run/logs/NAME.log,
#     and in the foreground a monitor: a line per revoked key (redacted), a summary
#     refreshed in place, and what to try next.
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${VENV:-.venv}
case $VENV in /*) ;; *) VENV=$PWD/$VENV ;; esac
export PATH="$VENV/bin:$PATH"

export KEYSWEEP_RUN_DIR=${KEYSWEEP_RUN_DIR:-$PWD/.run}
export KEYSWEEP_RUN_KEYSERVICE_PORT=${KEYSWEEP_RUN_KEYSERVICE_PORT:-8787}
export KEYSWEEP_RUN_SIM_PORT=${KEYSWEEP_RUN_SIM_PORT:-8788}
export KEYSWEEP_RUN_SIM_RATE=${KEYSWEEP_RUN_SIM_RATE:-5}
export KEYSWEEP_RUN_SERVE_PORT=${KEYSWEEP_RUN_SERVE_PORT:-8789}
export KEYSWEEP_METRICS_PORT=${KEYSWEEP_METRICS_PORT:-0}
mkdir -p "$KEYSWEEP_RUN_DIR"

redis_port=${KEYSWEEP_RUN_REDIS_PORT:-6379}
if redis-cli -h 127.0.0.1 -p "$redis_port" ping 2>/dev/null | grep -q PONG; then
  echo "run: Redis answers on 127.0.0.1:$redis_port"
elif command -v redis-server >/dev/null; then
  echo "run: starting redis-server on 127.0.0.1:$redis_port"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no
  sleep 0.5
else
  echo "run: no Redis on 127.0.0.1:$redis_port; install one (apt-get install redis-server) or start it" >&2
  exit 2
fi

# A fresh token for this run's key service; never printed.
if [ ! -s "$KEYSWEEP_RUN_DIR/keyservice.token" ]; then
  python -c 'import secrets; print(secrets.token_urlsafe(24))' > "$KEYSWEEP_RUN_DIR/keyservice.token"
  chmod 600 "$KEYSWEEP_RUN_DIR/keyservice.token"
fi
KEYSERVICE_TOKEN=$(cat "$KEYSWEEP_RUN_DIR/keyservice.token")
export KEYSERVICE_TOKEN KEYSWEEP_KEYSERVICE_TOKEN=$KEYSERVICE_TOKEN
export KEYSWEEP_KEYSERVICE_URL=http://127.0.0.1:$KEYSWEEP_RUN_KEYSERVICE_PORT
export KEYSWEEP_BROKER_URL=${KEYSWEEP_BROKER_URL:-redis://127.0.0.1:$redis_port/0}
export KEYSWEEP_REDIS_URL=${KEYSWEEP_REDIS_URL:-redis://127.0.0.1:$redis_port/1}
export KEYSWEEP_POLL_EVERY=${KEYSWEEP_POLL_EVERY:-1}
export KEYSWEEP_STATE_DIR=$KEYSWEEP_RUN_DIR/state

# keysweep serve's GitLab token and the credential reporter's key pair, made once
# per run directory; never printed.
if [ ! -s "$KEYSWEEP_RUN_DIR/gitlab.token" ]; then
  python -c 'import secrets; print(secrets.token_urlsafe(24))' > "$KEYSWEEP_RUN_DIR/gitlab.token"
  chmod 600 "$KEYSWEEP_RUN_DIR/gitlab.token"
fi
export KEYSWEEP_GITLAB_TOKEN_FILE=$KEYSWEEP_RUN_DIR/gitlab.token
if [ ! -s "$KEYSWEEP_RUN_DIR/reporter.key" ] || [ ! -s "$KEYSWEEP_RUN_DIR/reporter.pub" ]; then
  rm -f "$KEYSWEEP_RUN_DIR/reporter.key"
  keysweep report-credentials keygen --private-key-file "$KEYSWEEP_RUN_DIR/reporter.key" \
    | sed -n 's/^KEYSWEEP_REPORT_PUBLIC_KEY=//p' > "$KEYSWEEP_RUN_DIR/reporter.pub"
fi
export KEYSWEEP_REPORT_CREDENTIALS=${KEYSWEEP_REPORT_CREDENTIALS:-1}
KEYSWEEP_REPORT_PUBLIC_KEY=$(cat "$KEYSWEEP_RUN_DIR/reporter.pub")
export KEYSWEEP_REPORT_PUBLIC_KEY KEYSWEEP_REPORT_PRIVATE_KEY_FILE=$KEYSWEEP_RUN_DIR/reporter.key

if [ -z "${KEYSWEEP_GITHUB_TOKENS:-}" ]; then
  procfile=deploy/local/Procfile.sim
  export KEYSWEEP_GITHUB_API_URL=http://127.0.0.1:$KEYSWEEP_RUN_SIM_PORT
  export KEYSWEEP_GITHUB_TOKENS=local-sim-token
  export KEYSWEEP_CLONE_HTTP_HOSTS=127.0.0.1:$KEYSWEEP_RUN_SIM_PORT
  github="the GitHub simulator at $KEYSWEEP_GITHUB_API_URL ($KEYSWEEP_RUN_SIM_RATE documents/s, keys planted)"
else
  procfile=deploy/local/Procfile.github
  github="GitHub at ${KEYSWEEP_GITHUB_API_URL:-https://api.github.com}"
fi

# Each process logs to a file of its own; the previous run's logs are kept beside.
logs=$KEYSWEEP_RUN_DIR/logs
if [ -d "$logs" ]; then
  rm -rf "$KEYSWEEP_RUN_DIR/logs.previous"
  mv "$logs" "$KEYSWEEP_RUN_DIR/logs.previous"
fi
mkdir -p "$logs"

# What a second terminal needs to talk to this run's key service (keysweep keys/scan).
umask 077
cat > "$KEYSWEEP_RUN_DIR/env" <<ENV
export KEYSWEEP_KEYSERVICE_URL=$KEYSWEEP_KEYSERVICE_URL
export KEYSWEEP_KEYSERVICE_TOKEN=\$(cat "$KEYSWEEP_RUN_DIR/keyservice.token")
export PATH="$VENV/bin:\$PATH"
ENV
umask 022

notify="none (see 'try next')"
[ -n "${KEYSWEEP_NOTIFY_WEBHOOK_URL:-}" ] && notify="webhook"
[ -n "${KEYSWEEP_NOTIFY_SLACK_URL:-}" ] && notify="${notify/none (see 'try next')/} slack"
[ -n "${KEYSWEEP_SMTP_URL:-}" ] && notify="${notify/none (see 'try next')/} email"

started=$(date +%s)
cat <<INFO
run: started $(date '+%Y-%m-%d %H:%M:%S'); run directory $KEYSWEEP_RUN_DIR
run: key service   $KEYSWEEP_KEYSERVICE_URL   log: $logs/keyservice.log
run: GitHub        $github$( [ "$procfile" = deploy/local/Procfile.sim ] && printf '   log: %s' "$logs/github-sim.log")
run: workers       poll, fetch, act+notify    logs: $logs/worker-{poll,fetch,act}.log
run: scheduler     keysweep beat              log: $logs/beat.log
run: broker        $KEYSWEEP_BROKER_URL, state $KEYSWEEP_REDIS_URL
run: partner       keysweep serve on http://127.0.0.1:$KEYSWEEP_RUN_SERVE_PORT (GitHub alerts, GitLab API)   log: $logs/serve.log
run: reporter      keysweep report-credentials (GitHub tokens to GitHub)   log: $logs/reporter.log
run: alerts        $notify
run: logs          each process in $logs/ (the previous run's in $KEYSWEEP_RUN_DIR/logs.previous/)

try next (Ctrl-C stops everything):
  leak a key yourself, in another terminal (the line 'revoked mg_live_…' appears below):
      . $KEYSWEEP_RUN_DIR/env && keysweep keys create --env live > /tmp/leaked-key.txt && keysweep scan /tmp/leaked-key.txt --revoke --no-progress
  send a partner alert the way GitLab does (Token Revocation API); its key is revoked below:
      . $KEYSWEEP_RUN_DIR/env && key=\$(keysweep keys create --env live) && curl -sS -o /dev/null -w '%{http_code}\\n' -X POST http://127.0.0.1:$KEYSWEEP_RUN_SERVE_PORT/v1/revoke_tokens -H "Authorization: \$(cat $KEYSWEEP_RUN_DIR/gitlab.token)" -H 'content-type: application/json' -d "[{\\"type\\": \\"mg_live\\", \\"token\\": \\"\$key\\", \\"location\\": \\"https://gitlab.com/acme/app/-/blob/main/.env\\"}]"
      (GitHub's partner alerts come from the simulator already, signed as GitHub signs them)
  alerts: stop, then start again with a channel, e.g.
      KEYSWEEP_NOTIFY_SLACK_URL=https://hooks.slack.com/services/... make run
      (or KEYSWEEP_NOTIFY_WEBHOOK_URL with KEYSWEEP_NOTIFY_WEBHOOK_SECRET; README: Alert notifications)
  real GitHub instead of the simulator: stop, then
      KEYSWEEP_GITHUB_TOKENS=<your token> make run

INFO

honcho -f "$procfile" -d . start > "$logs/honcho.log" 2>&1 &
honcho_pid=$!
stop() {
  trap - INT TERM EXIT
  kill -TERM "$honcho_pid" 2>/dev/null || true
  wait "$honcho_pid" 2>/dev/null || true
}
trap stop INT TERM EXIT
keysweep status --follow --since "$started" --honcho-pid "$honcho_pid" || true
