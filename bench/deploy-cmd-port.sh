#!/usr/bin/env bash
# A straight bash port of KuduScript's generated Python deploy.cmd, the baseline kuduhook is
# measured against: node kudusync, then the env kept only by Kudu's marker file, then
# `pip install -r requirements.txt` on every deployment.
#
# usage: deploy-cmd-port.sh SOURCE TARGET MANIFEST PYTHON
set -euo pipefail
source_dir=$1 target=$2 manifest=$3 python=$4
kudusync=${KUDU_SYNC_CMD:-kudusync}

# 1. KuduSync (Kudu hands the first deployment a stock manifest listing its placeholder).
previous=$manifest
if [ ! -f "$previous" ]; then
  previous=$(mktemp)
  echo hostingstart.html > "$previous"
fi
"$kudusync" -v 50 -f "$source_dir" -t "$target" -n "$manifest" -p "$previous" \
  -i ".git;.hg;.deployment;deploy.cmd"

# 2. No requirements.txt: nothing else to do.
[ -f "$target/requirements.txt" ] || exit 0

# 3-4. The runtime's marker decides whether the env is kept.
runtime="python-$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ ! -f "$target/env/azure.env.$runtime.txt" ]; then
  echo "Deleting incompatible virtual environment."
  rm -rf "$target/env"
  "$python" -m venv "$target/env"
  touch "$target/env/azure.env.$runtime.txt"
else
  echo "Found compatible virtual environment."
fi

# 5. pip install, every deployment.
echo "Pip install requirements."
"$target/env/bin/pip" install -r "$target/requirements.txt"
