#!/usr/bin/env bash
# How busy the machine and the cluster were during a phase, to size MODELDEPLOY_TEST_WORKERS:
#
#   bash hack/load-sampler.sh start FILE   # every 10 s: CPU busy %, pods Pending as Unschedulable
#   bash hack/load-sampler.sh stop FILE    # stops it and prints one summary line
#
# CPU busy is the whole machine's (from /proc/stat); "unschedulable" counts pods whose
# PodScheduled condition is False with reason Unschedulable (the node's CPU requests full).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/cluster-lib.sh"

cpu_times() { awk '/^cpu /{idle=$5+$6; total=0; for(i=2;i<=NF;i++) total+=$i; print total, idle}' /proc/stat; }

sample_forever() {
  local file=$1 kubectl prev cur
  kubectl="$(any_kubectl 2>/dev/null || true)"
  prev="$(cpu_times)"
  while sleep 10; do
    cur="$(cpu_times)"
    local busy pending=0
    busy=$(awk -v p="$prev" -v c="$cur" 'BEGIN{split(p,a," "); split(c,b," "); dt=b[1]-a[1]; di=b[2]-a[2]; printf "%.0f", (dt > 0 ? 100*(dt-di)/dt : 0)}')
    prev=$cur
    if [[ -n "$kubectl" ]]; then
      pending=$("$kubectl" get pods -A --field-selector=status.phase=Pending \
        -o jsonpath='{range .items[*]}{range .status.conditions[?(@.reason=="Unschedulable")]}x{"\n"}{end}{end}' 2>/dev/null | grep -c x || true)
    fi
    echo "$(date +%s) $busy $pending" >> "$file"
  done
}

case "${1:-}" in
  start)
    : > "$2"
    sample_forever "$2" </dev/null >/dev/null 2>&1 &
    echo $! > "$2.pid"
    ;;
  stop)
    [[ -f "$2.pid" ]] && kill "$(cat "$2.pid")" 2>/dev/null || true
    rm -f "$2.pid"
    awk '{n++; busy+=$2; if($2>=90) hot++; if($3>maxp) maxp=$3; if($3>0) blocked++}
         END{if(!n){print "load: no samples"; exit}
             printf "load: CPU busy %.0f%% on average, >= 90%% in %.0f%% of the samples; pods unschedulable in %.0f%% of the samples (at most %d at once); %d samples of 10 s\n",
                    busy/n, 100*hot/n, 100*blocked/n, maxp, n}' "$2"
    ;;
  *) echo "usage: $0 start|stop FILE" >&2; exit 2 ;;
esac
