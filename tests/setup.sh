#!/usr/bin/env bash
# Installs what the tests use besides Rust and the machine's Pythons: node KuduSync (npm
# package `kudusync`), which the tests exchange manifests with. Idempotent; the only step
# that needs the network. Run by the README's test command and by .ci/run.
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
