#!/usr/bin/env bash
# Benchmark: `kuduhook rollback` beside what a user does without it, redeploying the previous
# commit (kuduhook deploy of it: the sync, the env built for its requirements, the start
# check), side by side in one run, on local disk and on the SMB-like share App Service Linux's
# /home is (tools/smbfs at LATENCIES ms per metadata call).
#
# The app: the Flask example plus FILES generated files (default 10,000: 100 folders of 100,
# 2 KB each) in a git repository. Release 1 is that; release 2 changes 100 of the files and
# drops gunicorn from the requirements (a new env). Each round deploys release 2 on top of
# release 1 (not timed), then times `kuduhook rollback` (release 1's files and env back); then
# deploys release 2 again (not timed) and times `kuduhook deploy` of release 1's commit. Needs
# root and /dev/fuse for the share. Prints medians.
#
# usage: bench/rollback.sh [ROUNDS] [LATENCIES] [FILES]   (default 5, "1", 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
latencies=${2:-1}
files=${3:-10000}

source bench/lib.sh
bench_setup rollback
site_like_env
git_q() { git -C "$1" -c user.name=bench -c user.email=bench@example.com "${@:2}" >/dev/null; }

# make_repo DIR COUNT: release 1 (the Flask example plus COUNT files) on branch one, release 2
# on branch two.
make_repo() {
  flask_app_with_files "$1" "$2"
  git_q "$1" init -q -b one
  git_q "$1" add -A
  git_q "$1" commit -q -m "release 1"
  git_q "$1" checkout -q -b two
  local i
  for i in $(seq 0 99); do
    echo "release 2" >>"$1/static/part$(printf %04d "$i")/file000.txt"
  done
  grep -v gunicorn "$1/requirements.txt" >"$1/requirements.new" && mv "$1/requirements.new" "$1/requirements.txt"
  git_q "$1" commit -q -am "release 2"
}

# deploy_branch BRANCH: checks BRANCH out and deploys it, as Kudu does on a push.
deploy_branch() {
  git_q "$repo" checkout -q "$1"
  SCM_COMMIT_ID=$(git -C "$repo" rev-parse HEAD) "$kuduhook" deploy --source "$repo" \
    --target "$site/wwwroot" --previous-manifest "$site/manifest" --next-manifest "$site/manifest"
}
rollback() { "$kuduhook" rollback --target "$site/wwwroot"; }
redeploy_previous() { deploy_branch one; }

declare -A times
# run WHERE LATENCY: times ROUNDS rollbacks and redeploys of the previous commit.
run() {
  local where=$1 latency=$2 r t
  site=$work/site-$where
  if [ "$where" = local ]; then mkdir -p "$site"; else mount_share "$site" 0; fi
  repo=$work/repo-$where
  make_repo "$repo" "$files"
  ms deploy_branch one >/dev/null
  if [ "$where" != local ]; then
    unmount_share
    mount_share "$site" "$latency"
  fi
  for r in $(seq "$rounds"); do
    ms deploy_branch two >/dev/null
    t=$(ms rollback)
    grep -q "Rolled back to commit" "$work/last.log" || { cat "$work/last.log" >&2; exit 1; }
    times[$where/rollback]+=" $t"
    ms deploy_branch two >/dev/null
    t=$(ms redeploy_previous)
    times[$where/redeploy]+=" $t"
    echo "$where: round $r/$rounds done"
  done
  if [ "$where" != local ]; then unmount_share; fi
  rm -rf "$repo" "$site" "$site.backing"
}

run local 0
for latency in $latencies; do
  run "share$latency" "$latency"
done

echo
echo "== back to the previous release ($files files + the Flask example's env), medians of $rounds (ms), $(nproc) cores"
printf "%-22s %18s %30s\n" where "kuduhook rollback" "redeploy the previous commit"
for where in local $(for l in $latencies; do echo "share$l"; done); do
  rb=$(median <<<"${times[$where/rollback]}")
  rd=$(median <<<"${times[$where/redeploy]}")
  label=${where/share/share at }
  [[ $where == share* ]] && label+=" ms"
  printf "%-22s %18s %22s (%s)\n" "$label" "$rb" "$rd" "$(ratio "$rd" "$rb")"
done
