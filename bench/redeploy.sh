#!/usr/bin/env bash
# Benchmark: a code-only redeploy, kuduhook's whole deployment beside node kudusync (npm)
# syncing the same change, side by side in one run, with the site on local disk and on the
# SMB-like share App Service Linux's /home is (tools/smbfs at LATENCIES ms per metadata call).
#
# The app: the Flask example (its env built once and reused: requirements unchanged) plus FILES
# generated files (default 10,000: 100 folders of 100, 2 KB each), in a git repository on local
# disk, as Kudu's checkout is a git repository. Each round commits a change to 1 file, then to
# 100 files, and times kuduhook's whole deploy (sync from git's diff, every Python step's no-op
# check, the manifests) and `kudusync -f repo -t site -p previous -n next` for that change.
# The sites are first filled through a mount at 0 ms (not timed), then remounted at the
# latency. Then the same one-file change with 10x the files (BIG, default 100,000), kuduhook
# only. Needs root and /dev/fuse. Prints medians.
#
# On App Service the repository is on /home too, and Kudu brings it to each pushed commit with
# `git fetch` and `git checkout <id> --force` before it runs the deployment command. Set
# REPO_ON_SHARE=1 to play that: the commits are made in a developer's repository on local disk,
# and before each timed deploy (not timed: Kudu's work) the repository on the share fetches the
# commit and checks it out by id, --force, as Kudu does.
#
# usage: bench/redeploy.sh [ROUNDS] [LATENCIES] [FILES] [BIG]   (default 5, "1 5", 10000, 100000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
latencies=${2:-1 5}
files=${3:-10000}
big=${4:-100000}

source bench/lib.sh
bench_setup redeploy
kudusync=$PWD/target/tools/node/node_modules/.bin/kudusync
site_like_env
# No automatic gc: with 100,000 loose objects a commit would start one in the background,
# packing while the deploys are timed (and while the repository is being removed).
git_q() { git -C "$1" -c user.name=bench -c user.email=bench@example.com -c gc.auto=0 \
  -c maintenance.auto=false "${@:2}" >/dev/null; }

# make_repo DIR COUNT: the Flask example plus COUNT files, committed.
make_repo() {
  flask_app_with_files "$1" "$2"
  git_q "$1" init -q
  git_q "$1" add -A
  git_q "$1" commit -q -m first
}

# change REPO N ROUND: rewrites N of the generated files, committed.
change() {
  local i
  for i in $(seq 0 $(($2 - 1))); do
    echo "round $3 change $i" >>"$1/static/part$(printf %04d "$i")/file000.txt"
  done
  git_q "$1" commit -q -am "change $2 files, round $3"
}

# kudu_checkout: what Kudu does with a push before the deployment command, when the repository
# is on the share: the developer's commit arrives in the repository's branch (fetched into it,
# as a push sends only what the branch lacks: a small change arrives as loose objects), then is
# checked out by id, --force. (Git's parallel checkout only makes the first one, 100,000 files
# through the mount, take minutes instead of many; none is timed.)
kudu_checkout() {
  [ "$repo" = "$dev" ] && return
  git_q "$repo" fetch -q --update-head-ok "$dev" +HEAD:refs/heads/master
  git_q "$repo" -c checkout.workers=32 -c checkout.thresholdForParallelism=1 \
    checkout -q --force "$(git -C "$repo" rev-parse refs/heads/master)"
}


# Kudu names the commit it deploys (SCM_COMMIT_ID): asked of the developer's repository (on
# local disk, the same commit), so that no git process on the share is timed as kuduhook's.
hook() { SCM_COMMIT_ID=$(git -C "$dev" rev-parse HEAD) "$kuduhook" deploy --source "$repo" \
  --target "$site/wwwroot" --previous-manifest "$site/manifest" --next-manifest "$site/manifest"; }
node_sync() { "$kudusync" -q -f "$repo" -t "$site/kudusync" -p "$site/manifest-k" \
  -n "$site/manifest-k" -i ".git;.hg;.deployment;deploy.sh"; }

declare -A times
# run WHERE LATENCY COUNT TOOLS: sets up a site for a repository of COUNT files, then times
# ROUNDS one-file and 100-file changes with each of TOOLS.
run() {
  local where=$1 latency=$2 count=$3 tools=$4 r n tool t
  site=$work/site-$where-$count
  if [ "$where" = local ]; then
    mkdir -p "$site"
  else
    mount_share "$site" 0
  fi
  dev=$work/repo-$where-$count
  repo=$dev
  make_repo "$dev" "$count"
  if [ "$where" != local ] && [ "${REPO_ON_SHARE:-}" = 1 ]; then
    repo=$site/repository
    git_q "$site" init -q repository
    kudu_checkout
  fi
  ms hook >/dev/null
  if [[ $tools == *node* ]]; then
    echo hostingstart.html >"$site/manifest-k"
    ms node_sync >/dev/null
  fi
  if [ "$where" != local ]; then
    unmount_share
    mount_share "$site" "$latency"
  fi
  for r in $(seq "$rounds"); do
    for n in 1 100; do
      # The big repository is timed for the one-file change only: its 100-file change is not
      # even committed, or the next deploy would sync 101 files.
      [ "$n" = 100 ] && [ "$count" = "$big" ] && continue
      change "$dev" "$n" "$r"
      kudu_checkout
      for tool in $tools; do
        t=$(ms "$tool")
        times[$where/$count/$n/$tool]+=" $t"
        if [ "$tool" = hook ] && ! grep -q "Copied $n file.*without walking the site" "$work/last.log"; then
          echo "kuduhook walked the site, or synced another change than the $n file(s) committed:" >&2
          cat "$work/last.log" >&2
          exit 1
        fi
      done
    done
    echo "$where, $count files: round $r/$rounds done"
  done
  if [ "$where" != local ]; then unmount_share; fi
  rm -rf "$dev" "$site" "$site.backing"
}

run local 0 "$files" "hook node_sync"
for latency in $latencies; do
  run "share$latency" "$latency" "$files" "hook node_sync"
done
first_latency=${latencies%% *}
run "share$first_latency" "$first_latency" "$big" "hook"

echo
echo "== code-only redeploy, medians of $rounds (ms), $(nproc) cores; ratio = kudusync / kuduhook"
printf "%-42s %10s %16s\n" scenario kuduhook "node kudusync"
for where in local $(for l in $latencies; do echo "share$l"; done); do
  for n in 1 100; do
    h=$(median <<<"${times[$where/$files/$n/hook]}")
    k=$(median <<<"${times[$where/$files/$n/node_sync]}")
    label="$n-file change, $files files, ${where/share/share at }"
    [[ $where == share* ]] && label+=" ms"
    printf "%-42s %10s %10s (%s)\n" "$label" "$h" "$k" "$(ratio "$k" "$h")"
  done
done
h10=$(median <<<"${times[share$first_latency/$files/1/hook]}")
h100=$(median <<<"${times[share$first_latency/$big/1/hook]}")
printf "%-42s %10s   (%s the cost at %s files)\n" "1-file change, $big files, share at $first_latency ms" \
  "$h100" "$(ratio "$h100" "$h10")" "$files"
