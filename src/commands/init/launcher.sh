#!/bin/sh
# kuduhook's launcher for a Linux site, written by `kuduhook init --launcher`: Kudu runs this
# file (.deployment: command = ./deploy/kuduhook); it runs deploy/launcher.py, which runs the
# kuduhook version pinned there, downloaded once and checked against its wheel's SHA-256.
# The Python it needs: KUDUHOOK_LAUNCHER_PYTHON, else python3 on PATH, else one of the Pythons
# of Kudu's Linux container (Oryx's /opt/python, its dynamic installs in /tmp/oryx/platforms).
here=$(dirname "$0")
for python in "$KUDUHOOK_LAUNCHER_PYTHON" "$(command -v python3)" "$(command -v python)" \
  /opt/python/latest/bin/python3 /opt/python/3*/bin/python3 /tmp/oryx/platforms/python/3*/bin/python3; do
  if [ -n "$python" ] && [ -x "$python" ]; then
    exec "$python" "$here/launcher.py" "$@"
  fi
done
echo "kuduhook launcher: error: no Python found to run deploy/launcher.py" >&2
echo "kuduhook launcher: fix: set the app setting KUDUHOOK_LAUNCHER_PYTHON to a python3 with pip" >&2
exit 1
