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
# The example is deployed to a site on local disk and, with LATENCY (ms), to a site on the
# SMB-like share App Service Linux's /home is (tools/smbfs, mounted; needs root and
# /dev/fuse), where every file Python looks up on import costs round trips. Each round starts
# both sites in turn, so the two are measured side by side under the same machine noise;
# medians and their ratio are printed.
#
# Each start gets a container disk of its own, as a new instance does, all removed at the end:
# removing the previous start's extracted env right before the next start made this VM's ext4
# (mounted with `discard`) trim during the next extraction, slowing it more with every round.
#
# usage: bench/cold-start.sh [ROUNDS] [LATENCY]   (default 10 rounds, local disk only)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-10}
latency=${2:-}

source bench/lib.sh
bench_setup cold-start
server=""
trap '[ -n "$server" ] && kill -- "-$server" 2>/dev/null; [ -n "$mounted" ] && umount -l "$mounted"; rm -rf "$work"' EXIT

# deploy WWWROOT: the example, deployed offline; prints the env's form there.
deploy() {
  PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/target/tools/wheels/flask-app \
    "$kuduhook" deploy --source examples/flask-app --target "$1" >"$work/deploy.log"
  if grep -q '^compressedVirtualEnvFile' "$1/oryx-manifest.toml"; then
    echo "env archive extracted"
  else
    echo "env folder on PYTHONPATH"
  fi
}
places=(local)
declare -A wwwroot form
wwwroot[local]=$work/local/wwwroot
form[local]=$(deploy "${wwwroot[local]}")
if [ -n "$latency" ]; then
  mount_share "$work/share" "$latency"
  places+=(share)
  wwwroot[share]=$work/share/wwwroot
  form[share]=$(deploy "${wwwroot[share]}")
  grep -E "Packed the new env|setuptools" "$work/deploy.log" || true
fi

image=$work/image
"$python" -m venv --without-pip "$image"
PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --no-index --find-links target/tools/wheels/platform \
  --target "$image/lib/python3.11/site-packages" gunicorn
export IMAGE_PYTHON_HOME IMAGE_PACKAGES=$image/lib/python3.11/site-packages CONTAINER_ROOT
IMAGE_PYTHON_HOME=$(dirname "$(dirname "$(readlink -f "$python")")")

# first_200 PORT COMMAND...: starts the server (a process group of its own), prints the ms
# until it answers 200, stops it.
first_200() {
  local port=$1 start end
  shift
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

declare -A platform by_hand
port=18731
# On the share, each start waits out the kernel's 1 s name and attribute cache, as a new
# instance starts with none.
settle() { if [ -n "$latency" ]; then sleep 1.1; fi; }
for round in $(seq "$rounds"); do
  line="round $round:"
  for place in "${places[@]}"; do
    settle
    CONTAINER_ROOT=$work/containers/$place-$round
    ms=$(first_200 "$port" bash tests/support/app-service-start.sh "${wwwroot[$place]}" 3.11 "$port")
    platform[$place]="${platform[$place]:-} $ms"
    settle
    ms=$(first_200 "$port" env -i PATH="$PATH" "${wwwroot[$place]}/env/bin/python" -m gunicorn \
      --timeout 600 --chdir "${wwwroot[$place]}" --bind "127.0.0.1:$port" app:app)
    by_hand[$place]="${by_hand[$place]:-} $ms"
    line+=" $place ${platform[$place]##* } ms (by hand $ms ms)"
  done
  echo "$line"
done

echo
echo "== cold start of the Flask example to its first 200, medians of $rounds ($(nproc) cores)"
printf '%-52s %18s %18s\n' "where the site is, the env's form" "App Service start" "env's own python"
for place in "${places[@]}"; do
  where="local disk"
  [ "$place" = share ] && where="the share at $latency ms per call"
  printf '%-52s %15s ms %15s ms\n' "$where, ${form[$place]}" \
    "$(echo "${platform[$place]}" | median)" "$(echo "${by_hand[$place]}" | median)"
done
if [ -n "$latency" ]; then
  echo "the share's App Service start / local disk's: $(ratio "$(echo "${platform[share]}" | median)" "$(echo "${platform[local]}" | median)")"
fi
