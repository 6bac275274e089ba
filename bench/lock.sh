#!/usr/bin/env bash
# Benchmark: a uv.lock app beside the same packages from requirements.txt, both deployed by
# kuduhook with uv, side by side in one run. The app: the Flask example requiring the dozen
# packages of bench/deploy.sh (29 wheels, downloaded once into bench/.cache); the lock app has
# them in pyproject.toml's [project] dependencies, locked by `uv lock --no-index --find-links`
# (not timed). Each round, for each app, into a new site (uv's cache kept beside it, empty): a
# first deploy and an unchanged redeploy. Prints medians and the lock app's ratio to the
# requirements.txt app (below 1.2x for a first deploy, about 1.0x unchanged, is the target).
#
# usage: bench/lock.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
source bench/lib.sh
bench_setup lock
wheels=$(dozen_wheels "$python" "$PWD/bench/.cache")
export PIP_NO_INDEX=1 PIP_FIND_LINKS=$wheels PIP_DISABLE_PIP_VERSION_CHECK=1
export KUDUHOOK_INSTALLER=uv KUDUHOOK_UV=$PWD/target/tools/bin/uv

# The two apps.
cp -r examples/flask-app "$work/requirements-app"
dozen_requirements 24.2.0 >"$work/requirements-app/requirements.txt"
cp -r examples/flask-app "$work/lock-app"
rm "$work/lock-app/requirements.txt"
{
  printf '[project]\nname = "app"\nversion = "1.0"\nrequires-python = ">=3.11.3"\ndependencies = [\n'
  dozen_requirements 24.2.0 | sed 's/.*/  "&",/'
  printf ']\n'
  # The wheels downloaded are Linux's: lock for Linux only (uv locks for every platform).
  printf '\n[tool.uv]\nenvironments = ["sys_platform == '"'"'linux'"'"'"]\n'
} >"$work/lock-app/pyproject.toml"
(cd "$work/lock-app" && "$KUDUHOOK_UV" lock --quiet --no-index --find-links "$wheels" --python "$python")
echo "uv.lock pins $(grep -c '^\[\[package\]\]' "$work/lock-app/uv.lock") packages (the project included)"

declare -A first unchanged
for round in $(seq "$rounds"); do
  for app in requirements-app lock-app; do
    site=$work/$app-$round
    first[$app]+="$(ms "$kuduhook" deploy --source "$work/$app" --target "$site/wwwroot" --python "$python") "
    unchanged[$app]+="$(ms "$kuduhook" deploy --source "$work/$app" --target "$site/wwwroot" --python "$python") "
    rm -rf "$site"
  done
  echo "round $round/$rounds done"
done

echo
echo "== medians of $rounds rounds (ms), kuduhook with uv; ratio = lock app / requirements.txt app"
printf "%-22s %16s %10s %8s\n" scenario requirements.txt uv.lock ratio
for scenario in first unchanged; do
  declare -n times=$scenario
  r=$(median <<<"${times[requirements-app]}")
  l=$(median <<<"${times[lock-app]}")
  label=$scenario
  [ "$scenario" = first ] && label="first deploy"
  [ "$scenario" = unchanged ] && label="unchanged redeploy"
  printf "%-22s %16s %10s %8s\n" "$label" "$r" "$l" "$(ratio "$l" "$r")"
done
