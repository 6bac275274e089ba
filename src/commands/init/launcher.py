# kuduhook's launcher, written by `kuduhook init --launcher`: the repository holds this file
# instead of kuduhook's binary. On each deployment it runs the kuduhook pinned below, from a
# cache on the site's persistent storage (/home/site/.kuduhook/launcher on App Service); the
# first deployment of a version downloads its wheel with pip, from the package index the app's
# own installs use (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL, pip.conf, credentials as pip takes
# them; pip never prints them), and checks it against the SHA-256 recorded here before
# anything runs. `kuduhook upgrade` changes the pin. docs/install.md says more.
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

VERSION = "@VERSION@"
WHEEL = "@WHEEL@"
SHA256 = "@SHA256@"
PLATFORM = "@PLATFORM@"

PIP_PLATFORMS = {
    "linux": ["manylinux_2_17_x86_64", "musllinux_1_1_x86_64"],
    "windows": ["win_amd64"],
}
BINARY = {"linux": "kuduhook", "windows": "kuduhook.exe"}


def say(line):
    print("kuduhook launcher: " + line, flush=True)


def fail(what, why, fix):
    for label, text in (("error", what), ("why", why), ("fix", fix)):
        print("kuduhook launcher: %s: %s" % (label, text), file=sys.stderr, flush=True)
    print(
        "kuduhook launcher: nothing was changed: the site still serves the previous deployment",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(1)


def cache_root():
    if os.environ.get("KUDUHOOK_LAUNCHER_CACHE"):
        return os.environ["KUDUHOOK_LAUNCHER_CACHE"]
    target = os.environ.get("DEPLOYMENT_TARGET")
    if target:
        # Beside the site, on the same persistent storage: /home/site/.kuduhook/launcher.
        return os.path.join(os.path.dirname(os.path.abspath(target)), ".kuduhook", "launcher")
    return os.path.join(os.path.expanduser("~"), ".cache", "kuduhook", "launcher")


def download(requirement, platform, dest):
    """pip download of one wheel for the site's platform into dest; (ok, pip's output)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--no-input", "--dest", dest]
    for tag in PIP_PLATFORMS[platform]:
        command += ["--platform", tag]
    done = subprocess.run(command + [requirement], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True)
    return done.returncode == 0, done.stdout


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(requirement, platform):
    """For init and upgrade: the wheel pip picks for the site's platform, with its hash."""
    with tempfile.TemporaryDirectory() as dest:
        ok, output = download(requirement, platform, dest)
        wheels = [n for n in os.listdir(dest) if n.endswith(".whl")]
        if not ok or len(wheels) != 1:
            sys.stderr.write(output)
            sys.exit(1)
        version = wheels[0].split("-")[1]
        print("%s %s %s" % (version, wheels[0], sha256_of(os.path.join(dest, wheels[0]))))


def install(folder):
    """Downloads the pinned wheel, checks it, and puts its binary in `folder`."""
    binary = BINARY[PLATFORM]
    root = os.path.dirname(folder)
    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".download-", dir=root)
    try:
        say("kuduhook %s is not in the cache (%s): downloading %s with pip from the app's "
            "package index" % (VERSION, root, WHEEL))
        ok, output = download("kuduhook==" + VERSION, PLATFORM, staging)
        if not ok:
            tail = " | ".join(line.strip() for line in output.strip().splitlines()[-4:])
            fail("kuduhook %s could not be downloaded, and no copy is cached in %s"
                 % (VERSION, root),
                 "pip said: " + tail,
                 "let the site reach the package index its requirements come from (the app "
                 "settings PIP_INDEX_URL, PIP_EXTRA_INDEX_URL), or commit the binary instead "
                 "(kuduhook init --force, without --launcher)")
        wheel = os.path.join(staging, WHEEL)
        if not os.path.isfile(wheel):
            got = ", ".join(n for n in os.listdir(staging) if n.endswith(".whl")) or "nothing"
            fail("the package index offered %s, not %s, for kuduhook %s" % (got, WHEEL, VERSION),
                 "deploy/launcher.py pins that wheel file and its SHA-256",
                 "run kuduhook upgrade in the repository to pin what the index serves, and push")
        actual = sha256_of(wheel)
        if actual != SHA256:
            fail("%s from the package index is not the wheel kuduhook init pinned: its SHA-256 "
                 "is %s, deploy/launcher.py records %s" % (WHEEL, actual, SHA256),
                 "a wheel that differs from the pinned one is never run: the index, or "
                 "something between it and the site, serves other bytes under that name",
                 "check which index the site uses (PIP_INDEX_URL); if kuduhook %s was "
                 "republished on purpose, run kuduhook upgrade and push" % VERSION)
        member = "kuduhook-%s.data/scripts/%s" % (VERSION, binary)
        with zipfile.ZipFile(wheel) as archive:
            with archive.open(member) as source, open(os.path.join(staging, binary), "wb") as out:
                shutil.copyfileobj(source, out)
        os.chmod(os.path.join(staging, binary), 0o755)
        os.remove(wheel)
        try:
            os.rename(staging, folder)  # in one step: a half-written copy is never used
        except OSError:
            if not os.path.isfile(os.path.join(folder, binary)):  # not another deployment's
                raise
        say("kuduhook %s (SHA-256 %s...) checked and cached in %s" % (VERSION, SHA256[:12], folder))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--resolve":
        resolve(sys.argv[2], sys.argv[3])
        return
    folder = os.path.join(cache_root(), "%s-%s" % (VERSION, SHA256[:16]))
    binary = os.path.join(folder, BINARY[PLATFORM])
    if os.path.isfile(binary):
        say("running kuduhook %s from the cache (%s)" % (VERSION, folder))
    else:
        install(folder)
    arguments = [binary] + sys.argv[1:]
    if os.name == "nt":
        sys.exit(subprocess.call(arguments))
    os.execv(binary, arguments)


if __name__ == "__main__":
    main()
