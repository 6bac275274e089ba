# Shared by the bench scripts: set-up, the share, timing, medians, ratios, and the generated
# file tree. Source it from the repository's root; `bench_setup` makes $work (a scratch folder).

# The machine's Python 3.11 (pyenv's newest 3.11, else python3.11 on PATH).
python=$(ls -d "$HOME"/.pyenv/versions/3.11*/bin/python3.11 2>/dev/null | tail -n 1)
python=${python:-$(command -v python3.11)}

# build_kuduhook: installs the tests' tools, builds smbfs and the kuduhook users commit for a
# Linux site (static, musl, with its allocator), and sets $kuduhook to it: the benchmarks time
# the binary that runs on App Service.
build_kuduhook() {
  bash tests/setup.sh
  cargo build --release --quiet -p smbfs
  cargo build --release --quiet -p kuduhook --target x86_64-unknown-linux-musl
  kuduhook=$PWD/target/x86_64-unknown-linux-musl/release/kuduhook
}

# bench_setup NAME: build_kuduhook, makes $work, and on exit unmounts the share (if one is
# mounted) and removes $work.
bench_setup() {
  echo "== setup (not timed)"
  build_kuduhook
  work=$(mktemp -d -p "${BENCH_DIR:-$PWD/target}" "bench-$1.XXXXXX")
  mounted=""
  trap '[ -n "$mounted" ] && umount -l "$mounted"; rm -rf "$work"' EXIT
}

# mount_share DIR LATENCY [BACKING]: the SMB-like share (tools/smbfs) at DIR, LATENCY ms per
# metadata call, over BACKING (default DIR.backing; an existing one keeps its files).
mount_share() {
  local backing=${3:-$1.backing}
  mkdir -p "$1" "$backing"
  target/release/smbfs "$backing" "$1" --latency-ms "$2" &
  until grep -q " $1 fuse" /proc/self/mounts; do sleep 0.05; done
  mounted=$1
}

unmount_share() {
  umount "$mounted" 2>/dev/null || umount -l "$mounted"
  while grep -q " $mounted fuse" /proc/self/mounts; do sleep 0.05; done
  mounted=""
}

# site_like_env: what the deploying benchmarks run with: the Flask example's wheels offline,
# the site's Python stack (3.11), and the interpreter's own folder first on PATH, as the
# platform's /opt/python/3.11/bin is (on this machine `python3.11` is otherwise pyenv's shim, a
# chain of bash scripts that costs ~130 ms each time the runtime step asks the interpreter its
# version).
site_like_env() {
  export PIP_NO_INDEX=1 PIP_FIND_LINKS=$PWD/target/tools/wheels/flask-app PIP_DISABLE_PIP_VERSION_CHECK=1
  export FRAMEWORK=PYTHON FRAMEWORK_VERSION=3.11
  export PATH=$(dirname "$python"):$PATH
}

# now: the time in nanoseconds, from bash's own clock (microseconds): no process is started to
# read it, so a timing holds only the command it times.
now() { local t=${EPOCHREALTIME//[!0-9]/}; echo "${t}000"; }

# ms COMMAND...: runs the command quietly, prints its wall time in milliseconds (from its fork to
# its exit, read from bash's clock with no other process in the window). A failure stops the
# benchmark with the command's output.
ms() {
  local start end
  start=${EPOCHREALTIME//[!0-9]/}
  "$@" >"$work/last.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  end=${EPOCHREALTIME//[!0-9]/}
  echo $(((end - start) / 1000))
}

median() { tr ' ' '\n' | { grep . || true; } | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1fx", a / b }'; }

# flask_app_with_files DIR COUNT: the Flask example plus COUNT generated files (100 folders
# of 100 under static/, 2 KB each), not yet a git repository.
flask_app_with_files() {
  cp -r examples/flask-app "$1"
  python3 - "$1" "$2" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    folder = os.path.join(root, "static", f"part{i // 100:04}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"file{i % 100:03}.txt"), "wb") as out:
        out.write(os.urandom(1024).hex().encode())
PY
}

# make_tree DIR FOLDERS FILES_PER_FOLDER SIZE [BIG_SIZE]: every 100th file is BIG_SIZE bytes.
make_tree() {
  python3 - "$@" <<'PY'
import os, sys
root, folders, files, size = sys.argv[1], *map(int, sys.argv[2:5])
big = int(sys.argv[5]) if len(sys.argv) > 5 else size
for d in range(folders):
    folder = os.path.join(root, f"pkg{d:04}")
    os.makedirs(folder)
    for f in range(files):
        with open(os.path.join(folder, f"mod{f:03}.py"), "wb") as out:
            out.write(os.urandom(big if (d * files + f) % 100 == 0 else size))
PY
}

# dozen_requirements ATTRS [no-redis]: the benchmark app's requirements, a dozen real packages
# (29 wheels with their dependencies), attrs at version ATTRS (24.2.0, or 24.3.0 for "one
# changed"); with no-redis, without redis (for "one removed").
dozen_requirements() {
  if [ "${2:-}" = no-redis ]; then
    dozen_requirements "$1" | grep -v '^redis=='
    return
  fi
  cat <<REQ
Flask==3.1.3
requests==2.32.3
Django==5.1.4
gunicorn==23.0.0
python-dateutil==2.9.0.post0
PyYAML==6.0.2
attrs==$1
SQLAlchemy==2.0.36
whitenoise==6.8.2
Markdown==3.7
redis==5.2.1
pytz==2024.2
REQ
}

# dozen_wheels PYTHON CACHE: downloads their wheels once into CACHE/wheels-dozen (the only
# step that needs the network) and prints that folder.
dozen_wheels() {
  local python=$1 wheels=$2/wheels-dozen attrs
  if [ ! -f "$wheels/.complete" ]; then
    for attrs in 24.2.0 24.3.0; do
      dozen_requirements "$attrs" >"$work/req.txt"
      "$python" -m pip download --quiet --only-binary :all: -d "$wheels" -r "$work/req.txt" >&2
    done
    touch "$wheels/.complete"
  fi
  echo "$wheels"
}

# deploy TOOL SITE: one deployment of $app into SITE with TOOL: `port` (bench/deploy-cmd-port.sh),
# `pip` or `uv` (kuduhook with that installer), with $python and the kuduhook at $kuduhook.
deploy() {
  local tool=$1 site=$2
  case $tool in
    port) bash bench/deploy-cmd-port.sh "$app" "$site/wwwroot" "$site/manifest" "$python" ;;
    pip) "$kuduhook" deploy --source "$app" --target "$site/wwwroot" --python "$python" ;;
    uv) KUDUHOOK_INSTALLER=uv KUDUHOOK_UV=$PWD/target/tools/bin/uv \
      "$kuduhook" deploy --source "$app" --target "$site/wwwroot" --python "$python" ;;
  esac
}
