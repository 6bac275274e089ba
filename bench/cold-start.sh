#!/usr/bin/env bash
# Benchmark: the deployed example app's cold start, the way App Service Linux starts it, played
# by tests/support/app-service-start.sh (the tests' judge of a start): a container of its own
# with the image's Python at /opt/python/3.11 (the machine's Python 3.11, gunicorn in its
# site-packages), the env wwwroot's oryx-manifest.toml names (extracted from its archive to
# /env on the container's disk when the manifest names one, else used from wwwroot) on
# PYTHONPATH, `gunicorn --timeout 600 --chdir wwwroot app:app`. Timed from the start of the
# process to the first 200 answer on a loopback port. Beside it, for reference, gunicorn run
# from the env folder itself (`env/bin/python -m gunicorn`), as a user might start it by hand.
#
# The site is on local disk, or with LATENCY (ms) on the SMB-like share App Service Linux's
# /home is (tools/smbfs, mounted; needs root and /dev/fuse), where every file Python looks up
# on import costs round trips. Prints medians.
#
# usage: bench/cold-start.sh [ROUNDS] [LATENCY]   (default 10 rounds, local disk)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
latency=${2:-}

echo "== setup (not timed)"
cargo build --release --quiet -p kuduhook -p smbfs
bash tests/setup.sh
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" bench-cold-start.XXXXXX)
server=""
trap '[ -n "$server" ] && kill -- "-$server" 2>/dev/null; [ -n "$latency" ] && umount -l "$work/site"; rm -rf "$work"' EXIT
source bench/lib.sh

where="local disk"
if [ -n "$latency" ]; then
  mkdir -p "$work/site" "$work/backing"
  target/release/smbfs "$work/backing" "$work/site" --latency-ms "$latency" &
  until grep -q " $work/site fuse" /proc/self/mounts; do sleep 0.05; done
  where="the share at $latency ms per call"
fi
wwwroot=$work/site/wwwroot
PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/target/tools/wheels/flask-app \
  target/release/kuduhook deploy --source examples/flask-app --target "$wwwroot" >"$work/deploy.log"
form="env folder on PYTHONPATH"
if grep -q '^compressedVirtualEnvFile' "$wwwroot/oryx-manifest.toml"; then
  form="env archive extracted"
fi

image=$work/image
"$python" -m venv --without-pip "$image"
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --no-index --find-links target/tools/wheels/platform \
  --target "$image/lib/python3.11/site-packages" gunicorn
export IMAGE_PYTHON_HOME IMAGE_PACKAGES=$image/lib/python3.11/site-packages CONTAINER_ROOT=$work/container
IMAGE_PYTHON_HOME=$(dirname "$(dirname "$(readlink -f "$python")")")

# first_200 PORT COMMAND...: starts the server (a process group of its own), prints the ms
# until it answers 200, stops it.
first_200() {
  local port=$1 start end
  shift
  rm -rf "$CONTAINER_ROOT"
  start=$(now)
  setsid "$@" >"$work/server.log" 2>&1 &
  server=$!
  until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")" = 200 ]; do
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.01
  done
  end=$(now)
  kill -TERM -- "-$server"
  wait "$server" 2>/dev/null || true
  server=""
  echo $(((end - start) / 1000000))
}

platform=()
by_hand=()
port=18731
# On the share, each start waits out the kernel's 1 s name and attribute cache, as a new
# instance starts with none.
settle() { if [ -n "$latency" ]; then sleep 1.1; fi; }
for round in $(seq "$rounds"); do
  settle
  platform+=("$(first_200 "$port" bash tests/support/app-service-start.sh "$wwwroot" 3.11 "$port")")
  settle
  by_hand+=("$(first_200 "$port" env -i PATH="$PATH" "$wwwroot/env/bin/python" -m gunicorn \
    --timeout 600 --chdir "$wwwroot" --bind "127.0.0.1:$port" app:app)")
  echo "round $round: platform start ${platform[-1]} ms, env's own python ${by_hand[-1]} ms"
done

echo
echo "== cold start of the Flask example to its first 200, medians of $rounds ($(nproc) cores, $where)"
printf '%-44s %8s\n' "App Service Linux's start ($form)" "$(echo "${platform[*]}" | median) ms"
printf '%-44s %8s\n' "the env's own python (by hand)" "$(echo "${by_hand[*]}" | median) ms"
