#!/usr/bin/env bash
# Benchmark: `kuduhook sync` beside node `kudusync` (npm), `rsync -a` and `cp -a`, side by side in
# one run, on a generated tree of 10,000 files and about 200 MB (9,900 files of 10 KB and 100 of
# 1 MB, in 100 folders).
#
# Each round, for every tool: a full sync into an empty target, an unchanged re-sync, and a
# re-sync after 1% of the files (100, picked at random) got new content. Prints the median of
# each and kuduhook's ratio to each other tool. Then peak memory (max RSS) of kuduhook sync on a
# tree of 100,000 small files.
#
# usage: bench/sync.sh [ROUNDS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}

echo "== setup (not timed)"
source bench/lib.sh
build_kuduhook
command -v rsync >/dev/null || apt-get install -y -qq rsync >/dev/null
kudusync=$PWD/target/tools/node/node_modules/.bin/kudusync
work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" bench-sync.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/src

make_tree "$src" 100 100 $((10 * 1024)) $((1024 * 1024))
echo "tree: $(find "$src" -type f | wc -l) files, $(du -sm "$src" | cut -f1) MB in $work"

# The tools, each into its own target, with the manifests Kudu would give it.
hook() {
  local out=$work/t-kuduhook
  "$kuduhook" sync -q -f "$src" -t "$out" -p "$work/m-kuduhook" -n "$work/m-kuduhook"
}
node_kudusync() {
  local out=$work/t-kudusync
  [ -f "$work/m-kudusync" ] || echo hostingstart.html >"$work/m-kudusync"
  "$kudusync" -q -f "$src" -t "$out" -p "$work/m-kudusync" -n "$work/m-kudusync"
}
rsync_a() { rsync -a "$src/" "$work/t-rsync/"; }
cp_a() { cp -a "$src" "$work/t-cp"; }
reset() { rm -rf "$work"/t-* "$work"/m-* "$work"/.kuduhook; sync; }

tools=(hook node_kudusync rsync_a)
declare -A full unchanged changed
for round in $(seq "$rounds"); do
  reset
  for tool in "${tools[@]}" cp_a; do full[$tool]+="$(ms "$tool") "; done
  # The full copies' writeback (four copies of the tree) finished before the re-syncs are timed,
  # as it would be between two deployments.
  sync
  for tool in "${tools[@]}"; do unchanged[$tool]+="$(ms "$tool") "; done
  find "$src" -type f | shuf -n 100 --random-source=<(yes "$round") | while read -r f; do
    head -c "$(stat -c %s "$f")" /dev/urandom >"$f"
  done
  sync
  for tool in "${tools[@]}"; do changed[$tool]+="$(ms "$tool") "; done
  echo "round $round done"
done

echo
echo "== medians of $rounds rounds (ms; ratio = tool / kuduhook, above 1 means kuduhook is faster)"
printf "%-20s %10s %10s %10s %10s\n" scenario kuduhook kudusync "rsync -a" "cp -a"
for scenario in full unchanged changed; do
  declare -n times=$scenario
  h=$(median <<<"${times[hook]}")
  k=$(median <<<"${times[node_kudusync]}")
  r=$(median <<<"${times[rsync_a]}")
  c=$([ "$scenario" = full ] && median <<<"${times[cp_a]}" || echo -)
  printf "%-20s %10s %10s %10s %10s\n" "$scenario" "$h" "$k" "$r" "$c"
  printf "%-20s %10s %10s %10s %10s\n" "  ratio" "1.0x" "$(ratio "$k" "$h")" "$(ratio "$r" "$h")" \
    "$([ "$c" = - ] && echo - || ratio "$c" "$h")"
done

echo
echo "== peak memory, 100,000 files of 100 bytes"
big=$work/big
make_tree "$big" 1000 100 100
for run in "full sync" "unchanged re-sync"; do
  /usr/bin/time -f "%M %e" -o "$work/time" "$kuduhook" sync -q -f "$big" -t "$work/big-out" \
    -p "$work/big-manifest" -n "$work/big-manifest"
  read -r kb secs <"$work/time"
  echo "$run: max RSS $((kb / 1024)) MB, ${secs}s"
done
