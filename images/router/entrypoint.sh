#!/bin/sh
# Runs nginx in the foreground on the mounted config and reloads it when the file changes.
#
# A ConfigMap volume is updated by swapping a symlink, so the file's content is checked
# (every second, by checksum), not inotify. A new config is applied only after `nginx -t`
# accepts it; a rejected one leaves the running config in place and is logged.
# SIGTERM (pod deletion) becomes SIGQUIT: nginx finishes in-flight requests, then exits.
set -eu
CONF=${ROUTER_CONF:-/etc/modeldeploy-router/nginx.conf}
PREFIX=${ROUTER_PREFIX:-/tmp/nginx}
PIDFILE=$PREFIX/nginx.pid

log() { echo "modeldeploy-router: $*" >&2; }
sum() { md5sum "$CONF" 2>/dev/null | cut -d' ' -f1; }
check() { nginx -t -q -e stderr -p "$PREFIX/" -c "$CONF" -g "pid $PIDFILE;"; }

[ -f "$CONF" ] || { log "no config at $CONF (mount the router ConfigMap there)"; exit 1; }
mkdir -p "$PREFIX"
check || { log "nginx rejected $CONF"; exit 1; }
last=$(sum)

nginx -e stderr -p "$PREFIX/" -c "$CONF" -g "daemon off; pid $PIDFILE;" &
NGINX=$!
trap 'kill -QUIT "$NGINX" 2>/dev/null || true' TERM INT QUIT

while kill -0 "$NGINX" 2>/dev/null; do
  sleep 1 &
  wait $! || true  # a trapped signal interrupts the wait at once
  now=$(sum)
  if [ -n "$now" ] && [ "$now" != "$last" ]; then
    last=$now
    if check; then
      log "config changed ($now): reloading"
      nginx -q -e stderr -p "$PREFIX/" -c "$CONF" -g "pid $PIDFILE;" -s reload
    else
      log "config changed ($now) but nginx rejected it: keeping the running one"
    fi
  fi
done
rc=0
wait "$NGINX" || rc=$?
exit "$rc"
