#!/usr/bin/env bash
# Benchmark: deployments with the site on App Service Linux's kind of filesystem, an SMB share,
# played by tools/smbfs (a FUSE mount: no symlinks, no atomic exchange, case-insensitive names,
# LATENCY ms per metadata call; see its doc comment), beside the same deployments on local disk,
# side by side in one run: kuduhook with pip, kuduhook with uv, and the deploy.cmd port
# (bench/deploy-cmd-port.sh: node kudusync, `python -m venv`, pip).
#
# The app: the Flask example requiring a dozen real packages (29 wheels, ~7,800 installed
# files), installed offline from wheels downloaded once. Each round, on a new share: a first
# deploy (empty site, empty caches), then one requirement changed (attrs 24.2.0 -> 24.3.0).
# Needs root and /dev/fuse (as the tests do). Prints medians, and says where a tool cannot run.
#
# usage: bench/share.sh [ROUNDS] [LATENCIES]   (default 3 rounds, latencies "1 5" ms)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
latencies=${2:-1 5}
cache=$PWD/bench/.cache

source bench/lib.sh
bench_setup share
wheels=$(dozen_wheels "$python" "$cache")

app=$work/app
cp -r examples/flask-app "$app"
export PIP_NO_INDEX=1 PIP_FIND_LINKS=$wheels PIP_DISABLE_PIP_VERSION_CHECK=1
export KUDU_SYNC_CMD=$PWD/target/tools/node/node_modules/.bin/kudusync


# attempt TOOL SITE: like `ms deploy`, but prints "fails" when the tool cannot deploy there.
attempt() {
  local start end
  start=$(now)
  if deploy "$1" "$2" >"$work/last.log" 2>&1; then
    end=$(now)
    echo $(((end - start) / 1000000))
  else
    echo fails
    cp "$work/last.log" "$work/failed-$1.log"
  fi
}

tools=(port pip uv)
declare -A first changed
for latency in local $latencies; do
  for round in $(seq "$rounds"); do
    for tool in "${tools[@]}"; do
      site=$work/$tool-$latency-$round
      [ "$latency" = local ] || mount_share "$site" "$latency"
      dozen_requirements 24.2.0 >"$app/requirements.txt"
      first[$tool-$latency]+="$(attempt "$tool" "$site") "
      dozen_requirements 24.3.0 >"$app/requirements.txt"
      if [ -x "$site/wwwroot/env/bin/python" ]; then
        changed[$tool-$latency]+="$(attempt "$tool" "$site") "
      else
        changed[$tool-$latency]+="fails "
      fi
      [ "$latency" = local ] || unmount_share
      rm -rf "$site" "$site.backing"
    done
    echo "$latency: round $round/$rounds done"
  done
done

# med TIMES: the median, or "fails" when any run failed.
med() { if grep -q fails <<<"$1"; then echo fails; else median <<<"$1"; fi; }

echo
echo "== medians of $rounds rounds (ms), $(nproc) cores; the share is smbfs at the latency shown"
printf "%-34s %12s %12s %12s\n" scenario "deploy.cmd" "kuduhook+pip" "kuduhook+uv"
for latency in local $latencies; do
  where="local disk"
  [ "$latency" = local ] || where="share, $latency ms/call"
  for scenario in first changed; do
    declare -n times=$scenario
    label="first deploy, $where"
    [ "$scenario" = changed ] && label="requirement changed, $where"
    printf "%-34s %12s %12s %12s\n" "$label" "$(med "${times[port-$latency]}")" \
      "$(med "${times[pip-$latency]}")" "$(med "${times[uv-$latency]}")"
  done
done
if [ -f "$work/failed-port.log" ]; then
  echo
  echo "deploy.cmd's port on the share: $(grep -m1 -iE 'error|not supported' "$work/failed-port.log" || tail -n 1 "$work/failed-port.log")"
fi
