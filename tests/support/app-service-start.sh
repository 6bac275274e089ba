#!/usr/bin/env bash
# App Service Linux's start of a Python site, played on this machine in a container of its
# own: the judge of whether a deployment gives a site that starts (tests/support/
# app_service_start.rs runs it; so does bench/cold-start.sh). Written from the platform's
# documented behaviour (docs/platform.md §8, Oryx's startup script generator),
# independently of kuduhook's code, on purpose.
#
# The container, as the app's container on App Service is:
# - its own root on local disk (CONTAINER_ROOT), with the machine's /usr and /etc, its own
#   /tmp; the image's Python X.Y at /opt/python/X.Y (IMAGE_PYTHON_HOME, a real installation;
#   its site-packages is IMAGE_PACKAGES, which holds gunicorn, as the image has it globally);
# - the site's folder (wwwroot's parent, as /home/site is shared with Kudu's container) at the
#   same path as the deployment wrote it.
# The start, as Oryx's generated script does it:
# - in wwwroot, `oryx-manifest.toml` (when present) names the env (`virtualEnvName`, else
#   `antenv`). With a `compressedVirtualEnvFile` (.tar.gz), the archive is extracted to
#   `/<name>` on the container's disk (`tar -xzf <file> -C /<name>`, run in wwwroot) and that
#   env is used; else the folder `wwwroot/<name>`, if it exists (else a warning). The env is not
#   activated: its lib/pythonX.Y/site-packages is appended to PYTHONPATH.
# - the entry: a top-level folder (other than the env) holding wsgi.py (Django:
#   `<folder>.wsgi`); else, on Python 3.14 and later unless PYTHON_DISABLE_FASTAPI_DETECTION is
#   set, the first of main, app, application, server, asgi, api, index, run (.py) that imports
#   fastapi and not flask (`<name>:app`, worker uvicorn_worker.UvicornWorker); else the first
#   of application, app, run, index, server, wsgi (.py) (`<name>:app`); gunicorn serves it with
#   `--timeout 600 --chdir <wwwroot>`, bound to PORT (a loopback port here).
#
# usage: app-service-start.sh WWWROOT MINOR PORT [COMMAND...]
#   With COMMAND, it runs in the container once the env is set up, instead of gunicorn.
#   The app settings are the environment this script is given.
# Needs root (mount and pid namespaces; nothing is mounted outside them).
set -euo pipefail

if [ "${1:-}" != --inside ]; then
  for var in CONTAINER_ROOT IMAGE_PYTHON_HOME IMAGE_PACKAGES; do
    [ -n "${!var:-}" ] || { echo "app-service-start.sh: $var is not set" >&2; exit 2; }
  done
  # A pid namespace too: when the container's first process ends, so does every process in it.
  exec unshare --mount --propagation private --pid --fork --kill-child -- bash "$0" --inside "$@"
fi
shift
wwwroot=$1 minor=$2 port=$3
shift 3
root=$CONTAINER_ROOT
site=$(dirname "$wwwroot")

mkdir -p "$root"/{usr,etc,dev,proc,tmp,root} "$root/opt/python/$minor"
for merged in bin lib lib64 sbin; do
  if [ -L "/$merged" ]; then ln -sfn "usr/$merged" "$root/$merged"; fi
done
mount --rbind /usr "$root/usr"
mount --bind /etc "$root/etc"
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/tmp"
# (After /tmp: the site or the interpreter may be under it.)
mkdir -p "$root$site" "$root$IMAGE_PYTHON_HOME"
mount --bind "$IMAGE_PYTHON_HOME" "$root/opt/python/$minor"
mount --bind "$IMAGE_PACKAGES" "$root/opt/python/$minor/lib/python$minor/site-packages"
# The interpreter finds libpython at the path it was built for.
mount --bind "$IMAGE_PYTHON_HOME" "$root$IMAGE_PYTHON_HOME"
mount --rbind "$site" "$root$site"

# What runs in the container: Oryx's startup script, in shell.
start='
set -eu
wwwroot=$1 minor=$2 port=$3
shift 3
export PATH=/opt/python/$minor/bin:/usr/local/bin:/usr/bin:/bin HOME=/root PORT=$port
cd "$wwwroot"
name=antenv archive=
if [ -f oryx-manifest.toml ]; then
  named=$(sed -n "s/^virtualEnvName *= *\"\(.*\)\"/\1/p" oryx-manifest.toml)
  [ -z "$named" ] || name=$named
  archive=$(sed -n "s/^compressedVirtualEnvFile *= *\"\(.*\)\"/\1/p" oryx-manifest.toml)
fi
if [ -n "$archive" ]; then
  case "$archive" in
    *.tar.gz) ;;
    *) echo "Error: Unrecognizable file $archive" >&2; exit 1 ;;
  esac
  echo "Extracting $archive to /$name"
  rm -rf "/$name"
  mkdir -p "/$name"
  tar -xzf "$archive" -C "/$name"
  env_dir=/$name
else
  env_dir=$wwwroot/$name
fi
if [ -d "$env_dir" ]; then
  export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$env_dir/lib/python$minor/site-packages
else
  echo "WARNING: Could not find virtual environment directory $env_dir"
fi
if [ $# -gt 0 ]; then
  exec "$@"
fi
entry=
for folder in */; do
  folder=${folder%/}
  if [ "$folder" != "$name" ] && [ -f "$folder/wsgi.py" ]; then entry=$folder.wsgi; break; fi
done
# Python 3.14 and later (unless PYTHON_DISABLE_FASTAPI_DETECTION): a FastAPI app, the first
# of these files that imports fastapi and not flask, with the uvicorn worker.
worker=
major=${minor%%.*} minor_only=${minor#*.}
if [ -z "$entry" ] && [ -z "${PYTHON_DISABLE_FASTAPI_DETECTION:-}" ] \
   && { [ "$major" -gt 3 ] || [ "$minor_only" -ge 14 ]; }; then
  for file in main app application server asgi api index run; do
    if [ -f "$file.py" ] && grep -Eq "^[[:space:]]*(import|from)[[:space:]]+fastapi([. ]|$)" "$file.py" \
       && ! grep -Eq "^[[:space:]]*(import|from)[[:space:]]+flask([. ]|$)" "$file.py"; then
      entry=$file:app worker=uvicorn_worker.UvicornWorker; break
    fi
  done
fi
if [ -z "$entry" ]; then
  for file in application app run index server wsgi; do
    if [ -f "$file.py" ]; then entry=$file:app; break; fi
  done
fi
if [ -z "$entry" ]; then echo "no entry found: the platform serves its default site" >&2; exit 3; fi
exec python$minor -m gunicorn --timeout 600 --chdir "$wwwroot" --bind "127.0.0.1:$port" ${worker:+-k "$worker"} "$entry"
'
exec chroot "$root" /bin/bash -c "$start" app-service-start "$wwwroot" "$minor" "$port" "$@"
