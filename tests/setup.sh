#!/usr/bin/env bash
# Installs what the tests use besides Rust and the machine's Pythons: uv (from PyPI), which
# the tests install with, and node KuduSync (npm package `kudusync`), which they exchange
# manifests with. Idempotent; the only step that needs the network. Run by the README's test
# command and by .ci/run.
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

# The wheels of the bundled Flask example (examples/flask-app), for the end-to-end test that
# deploys it offline: Flask and its dependencies for the example's Python (3.11).
flask_wheels=$tools/wheels/flask-app
if ! ls "$flask_wheels"/flask-*.whl >/dev/null 2>&1; then
  echo "downloading the Flask example's wheels into $flask_wheels"
  python3 -m pip download --quiet --only-binary=:all: --python-version 3.11 \
    --dest "$flask_wheels" -r examples/flask-app/requirements.txt
fi
