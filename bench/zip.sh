#!/usr/bin/env bash
# Benchmark: zip redeploys and re-syncs of a source that is not a git checkout, kuduhook beside
# node kudusync (npm) syncing the same folder, side by side in one run.
#
# 1. A zip redeploy on App Service's layout: the Flask example plus FILES generated files
#    (default 10,000: 100 folders of 100, 2 KB each) is "extracted" as KuduLite extracts a zip
#    (a fresh local folder, every file written anew, times cut to 2 seconds, no modes), the site
#    on the SMB-like share (tools/smbfs at LATENCY ms per metadata call, default 1). Each round
#    changes one file, extracts again (not timed), then times kuduhook's whole deployment (the
#    sync from its record of the last sync, every Python step's no-op check, the manifests),
#    `kuduhook sync` alone, and `kudusync -f extracted -t site -p previous -n next`.
# 2. `kuduhook sync` beside node kudusync re-syncing the same FILES-file folder unchanged, on
#    local disk, both given the manifests Kudu gives them.
# Needs root and /dev/fuse. Prints medians and ratios.
#
# usage: bench/zip.sh [ROUNDS] [LATENCY] [FILES]   (default 5, 1, 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
latency=${2:-1}
files=${3:-10000}

source bench/lib.sh
bench_setup zip
kudusync=$PWD/target/tools/node/node_modules/.bin/kudusync
site_like_env

app=$work/app
flask_app_with_files "$app" "$files"
extracted=$work/tmp/zipdeploy/extracted

# extract: the app as KuduLite extracts its zip: a fresh folder, each file written anew with its
# entry's time (a DOS time: to the even second below), no modes.
extract() {
  rm -rf "$extracted"
  python3 - "$app" "$extracted" <<'PY'
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
for folder, dirs, names in os.walk(src):
    out = os.path.join(dst, os.path.relpath(folder, src))
    os.makedirs(out, exist_ok=True)
    for name in names:
        path, to = os.path.join(folder, name), os.path.join(out, name)
        shutil.copyfile(path, to)
        os.chmod(to, 0o644)
        t = int(os.stat(path).st_mtime) // 2 * 2
        os.utime(to, (t, t))
PY
}

site=$work/site
hook() { "$kuduhook" deploy --source "$extracted" --target "$site/wwwroot" \
  --previous-manifest "$site/manifest" --next-manifest "$site/manifest"; }
hook_sync() { "$kuduhook" sync -v 5 -f "$extracted" -t "$site/ksync" -p "$site/manifest-s" \
  -n "$site/manifest-s" -i ".git;.hg;.deployment;deploy"; }
node_sync() { "$kudusync" -q -f "$extracted" -t "$site/kudusync" -p "$site/manifest-k" \
  -n "$site/manifest-k" -i ".git;.hg;.deployment;deploy"; }

declare -A times
mount_share "$site" 0
extract
echo hostingstart.html >"$site/manifest-k"
echo hostingstart.html >"$site/manifest-s"
ms hook >/dev/null
ms hook_sync >/dev/null
ms node_sync >/dev/null
unmount_share
mount_share "$site" "$latency"
for r in $(seq "$rounds"); do
  echo "round $r change" >>"$app/static/part0000/file000.txt"
  extract
  for tool in hook hook_sync node_sync; do
    t=$(ms "$tool")
    times[$tool]+=" $t"
    if [ "$tool" != node_sync ] && ! grep -q "Copied 1 file.*from the record of the last sync, 1 changed path" "$work/last.log"; then
      echo "$tool did not sync exactly the changed file from its record:" >&2
      cat "$work/last.log" >&2
      exit 1
    fi
  done
  echo "zip redeploy: round $r/$rounds done"
done
unmount_share

# 2. Unchanged re-syncs on local disk.
local_site=$work/local
resync() { "$kuduhook" sync -v 5 -f "$app" -t "$local_site/ksync" -p "$local_site/m-s" -n "$local_site/m-s"; }
resync_walk() { KUDUHOOK_SYNC_VERIFY=full "$kuduhook" sync -q -f "$app" -t "$local_site/kwalk" \
  -p "$local_site/m-w" -n "$local_site/m-w"; }
resync_node() { "$kudusync" -q -f "$app" -t "$local_site/kudusync" -p "$local_site/m-k" -n "$local_site/m-k"; }
mkdir -p "$local_site"
for f in m-s m-w m-k; do echo hostingstart.html >"$local_site/$f"; done
for tool in resync resync_walk resync_node; do ms "$tool" >/dev/null; ms "$tool" >/dev/null; done
for r in $(seq "$rounds"); do
  for tool in resync resync_walk resync_node; do times[$tool]+=" $(ms "$tool")"; done
done

declare -A label=(
  [hook]="kuduhook deploy (the whole deployment)"
  [hook_sync]="kuduhook sync (from its record)"
  [node_sync]="node kudusync"
  [resync]="kuduhook sync (from its record)"
  [resync_walk]="kuduhook sync, KUDUHOOK_SYNC_VERIFY=full (walk)"
  [resync_node]="node kudusync"
)
# table KUDUSYNC TOOL...: each tool's median and kudusync's median over it.
table() {
  local k tool t
  k=$(median <<<"${times[$1]}")
  shift
  printf "%-48s %8s %10s\n" scenario ms "kudusync / it"
  for tool in "$@"; do
    t=$(median <<<"${times[$tool]}")
    printf "%-48s %8s %10s\n" "${label[$tool]}" "$t" "$(ratio "$k" "$t")"
  done
}

echo
echo "== zip redeploy, 1-file change in $files files, site on the share at $latency ms; medians of $rounds (ms), $(nproc) cores"
table node_sync hook hook_sync node_sync
echo
echo "== unchanged re-sync of $files files, local disk; medians of $rounds (ms)"
table resync_node resync resync_walk resync_node
