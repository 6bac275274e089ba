#!/usr/bin/env bash
# Installs what the tests use besides Rust and the machine's Pythons: uv (from PyPI), which
# the tests install with; node KuduSync (npm package `kudusync`), which they exchange
# manifests with; Rust's musl target and Debian's musl-tools, for the static deploy/kuduhook a
# Linux site commits (its allocator, mimalloc, is C built with musl-gcc);
# the wheels of the apps the tests start the way App Service does (Flask, Django, gunicorn);
# and for Windows sites, Rust's x86_64-pc-windows-gnu target with Debian's mingw-w64 and
# Wine, which run kuduhook.exe in tests/windows.rs.
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

# A tool whose wheel from PyPI holds one static binary (uv, maturin): the wheel kept in
# $tools/NAME-wheel, the binary unpacked to $tools/bin/NAME. Skipped when that version is there.
install_wheel_binary() {
  local name=$1 version=$2
  if [ -x "$tools/bin/$name" ] && [ "$("$tools/bin/$name" --version | cut -d' ' -f2)" = "$version" ] &&
    ls "$tools/$name-wheel/$name-$version-"*.whl >/dev/null 2>&1; then
    return
  fi
  echo "installing $name $version into $tools/bin"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tools/$name-wheel" "$name==$version"
  mkdir -p "$tools/bin"
  python3 - "$tools" "$name" "$version" <<'PY'
import glob, os, sys, zipfile
tools, name, version = sys.argv[1:]
wheel = glob.glob(os.path.join(tools, name + "-wheel", "%s-%s-*.whl" % (name, version)))[0]
with zipfile.ZipFile(wheel) as z:
    member = next(n for n in z.namelist() if n.endswith(".data/scripts/" + name))
    with z.open(member) as src, open(os.path.join(tools, "bin", name), "wb") as dst:
        dst.write(src.read())
os.chmod(os.path.join(tools, "bin", name), 0o755)
PY
}

# uv, the fast installer kuduhook can use (KUDUHOOK_INSTALLER=uv).
install_wheel_binary uv 0.13.9
# maturin, which packaging/build-wheels builds kuduhook's wheels with (its wheel is also the
# offline build backend of `pip wheel .` in the tests), and pipx, which tests/wheels.rs installs
# a wheel with, as users do.
install_wheel_binary maturin 1.16.0
pipx_version=1.18.16
if [ ! -x "$tools/pipx/bin/pipx" ] || [ "$("$tools/pipx/bin/pipx" --version)" != "$pipx_version" ]; then
  echo "installing pipx $pipx_version into $tools/pipx"
  rm -rf "$tools/pipx"
  python3 -m venv "$tools/pipx"
  "$tools/pipx/bin/pip" install --quiet --disable-pip-version-check "pipx==$pipx_version"
  # The pip pipx puts in its shared env, which the tests' offline `pipx install` finds here.
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tools/wheels/pipx" pip
fi

# A Linux site's deploy/kuduhook is a static (musl) binary: Kudu's container has an older glibc.
# (Its allocator's C code is compiled by musl-gcc, from Debian's musl-tools: installed below.)
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
# The app layouts the platform starts (tests/platform_start.rs): setuptools and wheel, which
# pip builds a setup.py project with, and a FastAPI app's wheels with uvicorn, for Python 3.11.
if [ ! -f "$wheels/.complete-layouts-1" ]; then
  echo "downloading setuptools, wheel, FastAPI and uvicorn for Python 3.11 into $wheels/layouts"
  python3 -m pip download --quiet --only-binary=:all: --python-version 3.11 \
    --dest "$wheels/layouts" "setuptools>=70" wheel "fastapi==0.115.*" "uvicorn==0.32.*"
  touch "$wheels/.complete-layouts-1"
fi

# Real wheels from the index, as their build backends wrote them (pandas' METADATA is 1,573
# lines): tests/metadata_corpus.rs reads their dependencies beside importlib.metadata and
# deploys an exact env of them. Pinned in tests/fixtures/corpus-requirements.txt (126 MB), plus
# Flask 3.1.3, the one-package bump.
if [ ! -f "$wheels/.complete-corpus-1" ]; then
  echo "downloading the corpus of real wheels for Python 3.11 into $wheels/corpus (126 MB, once)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --dest "$wheels/corpus" -r tests/fixtures/corpus-requirements.txt
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
    --dest "$wheels/corpus" flask==3.1.3
  touch "$wheels/.complete-corpus-1"
fi

# Windows App Service: kuduhook.exe is cross-built for x86_64-pc-windows-gnu with Debian's
# mingw-w64 (the linker), and tests/windows.rs runs it under Debian's Wine.
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-pc-windows-gnu; then
  echo "installing Rust's x86_64-pc-windows-gnu target"
  rustup target add x86_64-pc-windows-gnu
fi
wine64=/usr/lib/wine/wine64
missing=()
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v x86_64-w64-mingw32-gcc >/dev/null || missing+=(gcc-mingw-w64-x86-64)
[ -x "$wine64" ] || missing+=(wine64)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages"
  if [ "$(id -u)" != 0 ]; then
    echo "error: run as root, or: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi
# The tests' Wine prefix, with two programs of ours built by mingw-w64:
# - bcryptprimitives.dll: Debian's Wine 8.0 lacks that DLL, whose ProcessPrng Rust's standard
#   library asks for at start; without it no Rust program starts under that Wine. The
#   stand-in calls RtlGenRandom (see tests/support/wine/bcryptprimitives.c). Windows has the
#   real one: kuduhook.exe is not changed for Wine.
# - hold.exe: holds a file open as IIS does (tests/support/wine/hold.c).
wine=$tools/wine
dll=$wine/prefix/drive_c/windows/system32/bcryptprimitives.dll
if [ ! -f "$dll" ] || [ ! -f "$wine/hold.exe" ] || [ tests/support/wine/bcryptprimitives.c -nt "$dll" ] ||
  [ tests/support/wine/hold.c -nt "$wine/hold.exe" ]; then
  echo "setting up the tests' Wine prefix in $wine/prefix"
  mkdir -p "$wine"
  x86_64-w64-mingw32-gcc -O2 -shared -o "$wine/bcryptprimitives.dll" tests/support/wine/bcryptprimitives.c -ladvapi32
  x86_64-w64-mingw32-gcc -O2 -o "$wine/hold.exe" tests/support/wine/hold.c
  WINEPREFIX=$PWD/$wine/prefix WINEDEBUG=-all "$wine64" wineboot -i >/dev/null 2>&1
  cp "$wine/bcryptprimitives.dll" "$dll"
fi
