#!/usr/bin/env bash
# Installs what the tests use besides Rust and the machine's Pythons: uv (from PyPI), which
# the tests install with; node KuduSync (npm package `kudusync`), which they exchange
# manifests with; Rust's musl target, for the static deploy/kuduhook a Linux site commits; and
# the wheels of the apps the tests start the way App Service does (Flask, Django, gunicorn).
# Idempotent; the only step that needs the network. Run by the README's test command and by
# .ci/run.
#
# usage: tests/setup.sh   (prints nothing when everything is there)
set -euo pipefail
cd "$(dirname "$0")/.."
tools=target/tools

if [ ! -x "$tools/node/node_modules/.bin/kudusync" ]; then
  command -v npm >/dev/null || { echo "error: npm is needed to install node kudusync" >&2; exit 1; }
  echo "installing node kudusync into $tools/node"
  npm install --silent --no-audit --no-fund --prefix "$tools/node" kudusync >/dev/null
fi

# uv, the fast installer kuduhook can use (KUDUHOOK_INSTALLER=uv): its wheel from PyPI holds
# one static binary, unpacked to $tools/bin/uv.
uv_version=0.13.9
if [ ! -x "$tools/bin/uv" ] || [ "$("$tools/bin/uv" --version | cut -d' ' -f2)" != "$uv_version" ]; then
  echo "installing uv $uv_version into $tools/bin"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tools/uv-wheel" "uv==$uv_version"
  mkdir -p "$tools/bin"
  python3 - "$tools" <<'PY'
import glob, os, sys, zipfile
tools = sys.argv[1]
wheel = sorted(glob.glob(os.path.join(tools, "uv-wheel", "uv-*.whl")))[-1]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith(".data/scripts/uv"))
    with z.open(member) as src, open(os.path.join(tools, "bin", "uv"), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(tools, "bin", "uv"), 0o755)
PY
fi

# A Linux site's deploy/kuduhook is a static (musl) binary: Kudu's container has an older glibc.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "installing Rust's x86_64-unknown-linux-musl target"
  rustup target add x86_64-unknown-linux-musl
fi

# The wheels of the bundled Flask example (examples/flask-app), for the end-to-end tests that
# deploy it offline, for Python 3.11 and 3.12 (a stack switch); and those of the platform's
# start: gunicorn (App Service's image has it) and a small Django app's.
wheels=$tools/wheels
if [ ! -f "$wheels/.complete-2" ]; then
  for minor in 3.11 3.12; do
    echo "downloading the Flask example's wheels for Python $minor into $wheels/flask-app"
    python3 -m pip download --quiet --only-binary=:all: --python-version "$minor" \
      --dest "$wheels/flask-app" -r examples/flask-app/requirements.txt
    echo "downloading gunicorn and Django 4.2 for Python $minor into $wheels/platform"
    python3 -m pip download --quiet --only-binary=:all: --python-version "$minor" \
      --dest "$wheels/platform" gunicorn==23.0.0 "django==4.2.*"
  done
  touch "$wheels/.complete-2"
fi
