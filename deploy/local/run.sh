#!/usr/bin/env bash
# `make run`: the whole service on this machine, under honcho (Ctrl-C stops it all).
#   - Redis: the one on 127.0.0.1:6379 if it answers, else redis-server if installed.
#   - The reference key service on :8787.
#   - Without KEYSWEEP_GITHUB_TOKENS: the GitHub simulator on :8788, feeding traffic
#     with planted keys; with them: real GitHub.
#   - A worker per kind of queue, the scheduler, and a monitor that prints a line per
#     revoked key (redacted) and a running summary.
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

cat <<INFO
run: key service   $KEYSWEEP_KEYSERVICE_URL (token in $KEYSWEEP_RUN_DIR/keyservice.token)
run: GitHub        $github
run: broker        $KEYSWEEP_BROKER_URL, state $KEYSWEEP_REDIS_URL
run: workers       poll, fetch, act+notify; scheduler: keysweep beat
run: partner       keysweep serve on http://127.0.0.1:$KEYSWEEP_RUN_SERVE_PORT (GitHub alerts, GitLab API); keysweep report-credentials
run: watch         lines below: 'revoked mg_…' per key, 'summary:' every 10 s; Ctrl-C stops everything
INFO
exec honcho -f "$procfile" -d . start
