#!/usr/bin/env bash
# Benchmark: whole deployments, side by side in one run: kuduhook with pip, kuduhook with uv
# (KUDUHOOK_INSTALLER=uv), and a straight bash port of deploy.cmd (bench/deploy-cmd-port.sh:
# node kudusync, venv, `pip install -r` every time).
#
# The app: the bundled Flask example plus 10,000 generated source files (2 KB each, 100
# folders), requiring a dozen real packages (Flask, Django, requests, SQLAlchemy, ...: 25
# packages with their dependencies). Their wheels are downloaded once into bench/.cache and
# installed with --no-index, so the network plays no part in the timings.
#
# Each round, for each tool, into a new site: a first deployment (empty site, empty caches),
# an unchanged redeployment, then one requirement bumped (attrs 24.2.0 -> 24.3.0), one removed
# (redis) and one added (redis again). After each, the env is checked: attrs at its version,
# redis importable or not (the port's in-place install keeps a removed package: it is reported,
# not failed). Prints medians and each tool's ratio to the deploy.cmd port.
#
# usage: bench/deploy.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
cache=$PWD/bench/.cache

python=$(ls -d "$HOME"/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | tail -n 1)
python=${python:-$(command -v python3.11)}

echo "== setup (not timed)"
source bench/lib.sh
build_kuduhook
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" bench-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT

wheels=$(dozen_wheels "$python" "$cache")
app=$work/app
cp -r examples/flask-app "$app"
dozen_requirements 24.2.0 >"$app/requirements.txt"
make_tree "$app" 100 100 2048
echo "app: $(find "$app" -type f | wc -l) files; $(ls "$wheels"/*.whl | wc -l) wheels for $("$python" --version)"

export PIP_NO_INDEX=1 PIP_FIND_LINKS=$wheels PIP_DISABLE_PIP_VERSION_CHECK=1
export KUDU_SYNC_CMD=$PWD/target/tools/node/node_modules/.bin/kudusync

# TOOLS="port pip" times only those (default all three).
read -r -a tools <<<"${TOOLS:-port pip uv}"
declare -A first unchanged changed removed added
# has TOOL SITE MODULE: whether the site's env imports MODULE.
has() { "$2/wwwroot/env/bin/python" -c "import $3" 2>/dev/null; }
for round in $(seq "$rounds"); do
  dozen_requirements 24.2.0 >"$app/requirements.txt"
  for tool in "${tools[@]}"; do
    mkdir -p "$work/$tool-$round"
    first[$tool]+="$(ms deploy "$tool" "$work/$tool-$round") "
    unchanged[$tool]+="$(ms deploy "$tool" "$work/$tool-$round") "
  done
  dozen_requirements 24.3.0 >"$app/requirements.txt"
  for tool in "${tools[@]}"; do
    changed[$tool]+="$(ms deploy "$tool" "$work/$tool-$round") "
    "$work/$tool-$round/wwwroot/env/bin/python" -c 'import attrs, sys; sys.exit(attrs.__version__ != "24.3.0")' \
      || { echo "$tool did not install attrs 24.3.0" >&2; exit 1; }
  done
  dozen_requirements 24.3.0 no-redis >"$app/requirements.txt"
  for tool in "${tools[@]}"; do
    removed[$tool]+="$(ms deploy "$tool" "$work/$tool-$round") "
    if has "$tool" "$work/$tool-$round" redis; then
      [ "$tool" = port ] || { echo "$tool kept the removed redis" >&2; exit 1; }
      [ "$round" = 1 ] && echo "port: redis is still installed after its removal (in-place install)"
    fi
  done
  dozen_requirements 24.3.0 >"$app/requirements.txt"
  for tool in "${tools[@]}"; do
    added[$tool]+="$(ms deploy "$tool" "$work/$tool-$round") "
    has "$tool" "$work/$tool-$round" redis || { echo "$tool did not install redis" >&2; exit 1; }
    rm -rf "$work/$tool-$round"
  done
  echo "round $round/$rounds done"
done

echo
echo "== medians of $rounds rounds (ms; ratio = deploy.cmd port / tool, above 1 means faster)"
printf "%-28s %12s %12s %12s\n" scenario "deploy.cmd" "kuduhook+pip" "kuduhook+uv"
for scenario in first unchanged changed removed added; do
  declare -n times=$scenario
  p=$(median <<<"${times[port]:-}")
  k=$(median <<<"${times[pip]:-}")
  u=$(median <<<"${times[uv]:-}")
  label=$scenario
  [ "$scenario" = changed ] && label="one requirement bumped"
  [ "$scenario" = removed ] && label="one requirement removed"
  [ "$scenario" = added ] && label="one requirement added"
  [ "$scenario" = first ] && label="first deploy"
  [ "$scenario" = unchanged ] && label="unchanged redeploy"
  printf "%-28s %12s %12s %12s\n" "$label" "$p" "$k" "$u"
  printf "%-28s %12s %12s %12s\n" "  ratio" "1.0x" "$(ratio "$p" "$k")" "$(ratio "$p" "$u")"
done
f_pip=$(median <<<"${first[pip]:-}")
f_uv=$(median <<<"${first[uv]:-}")
echo "first deploy, kuduhook+pip / kuduhook+uv: $(ratio "$f_pip" "$f_uv")"
