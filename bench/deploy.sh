#!/usr/bin/env bash
# Benchmark: kuduhook against a straight port of deploy.cmd (bench/deploy-cmd-port.sh), side by
# side in one run, on the bundled example app (examples/flask-app).
#
# For each tool, each round: a first deployment into an empty site, then an unchanged
# redeployment. Both install the same wheels from a local folder (--no-index), downloaded once,
# so the network plays no part in the timings. Prints medians and the ratio.
#
# usage: bench/deploy.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cache=bench/.cache
app=examples/flask-app
mkdir -p "$cache"

python=$(ls -d "$HOME"/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | tail -n 1)
python=${python:-$(command -v python3.11)}

echo "== setup (not timed)"
cargo build --release --quiet
if [ ! -x "$cache/node/node_modules/.bin/kudusync" ]; then
  npm install --silent --no-audit --no-fund --prefix "$cache/node" kudusync
fi
if ! ls "$cache"/wheels/flask-*.whl >/dev/null 2>&1; then
  "$python" -m pip download --quiet --only-binary :all: -d "$cache/wheels" -r "$app/requirements.txt"
fi
export PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/$cache/wheels PIP_DISABLE_PIP_VERSION_CHECK=1
export KUDU_SYNC_CMD=$PWD/$cache/node/node_modules/.bin/kudusync
kuduhook=$PWD/target/release/kuduhook
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

now() { date +%s%N; }
# time_ms LOG COMMAND...: runs the command, prints its wall time in ms.
time_ms() {
  local log=$1; shift
  local start end
  start=$(now)
  "$@" >"$log" 2>&1 || { echo "failed: $*" >&2; cat "$log" >&2; exit 1; }
  end=$(now)
  echo $(( (end - start) / 1000000 ))
}

declare -A samples
for round in $(seq "$rounds"); do
  for tool in deploy.cmd-port kuduhook; do
    site=$work/$tool-$round
    mkdir -p "$site"
    if [ "$tool" = kuduhook ]; then
      run=("$kuduhook" deploy --source "$app" --target "$site/wwwroot" --python "$python")
    else
      run=(bash bench/deploy-cmd-port.sh "$app" "$site/wwwroot" "$site/manifest" "$python")
    fi
    samples[$tool,first]+="$(time_ms "$site/first.log" "${run[@]}") "
    samples[$tool,redeploy]+="$(time_ms "$site/redeploy.log" "${run[@]}") "
  done
  echo "round $round/$rounds done"
done

echo
echo "== medians over $rounds rounds, in ms (lower is better)"
python3 - "$rounds" \
  "${samples[deploy.cmd-port,first]}" "${samples[kuduhook,first]}" \
  "${samples[deploy.cmd-port,redeploy]}" "${samples[kuduhook,redeploy]}" <<'PY'
import statistics, sys
rounds = sys.argv[1]
port_first, hook_first, port_re, hook_re = (
    [int(x) for x in arg.split()] for arg in sys.argv[2:6]
)
print(f"{'scenario':<22}{'deploy.cmd port':>16}{'kuduhook':>10}{'speed-up':>10}")
for name, port, hook in [
    ("first deploy", port_first, hook_first),
    ("unchanged redeploy", port_re, hook_re),
]:
    p, h = statistics.median(port), statistics.median(hook)
    print(f"{name:<22}{p:>16.0f}{h:>10.0f}{p / h:>9.1f}x")
PY
