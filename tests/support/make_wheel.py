"""Builds a tiny pure-Python wheel for kuduhook's tests, with no network and no build backend.

usage: make_wheel.py [--requires SPEC]... [--extra NAME]... [--module NAME] OUTDIR NAME VERSION
                     [console-script ...]

The package's module (`NAME`, or `--module`) has `__version__ = VERSION`, `ORIGIN = NAME` and
a `hello()` function; each console script runs `hello()`. `--requires` adds a Requires-Dist
(markers and `extra == "..."` included), `--extra` a Provides-Extra. The wheel is complete
(METADATA, WHEEL, RECORD with hashes), so pip installs it like any other.
"""

import base64
import hashlib
import os
import sys
import zipfile

requires, extras, module, positional = [], [], None, []
args = sys.argv[1:]
while args:
    arg = args.pop(0)
    if arg == "--requires":
        requires.append(args.pop(0))
    elif arg == "--extra":
        extras.append(args.pop(0))
    elif arg == "--module":
        module = args.pop(0)
    else:
        positional.append(arg)
out, name, version = positional[:3]
scripts = positional[3:]
module = module or name
dist_info = f"{name}-{version}.dist-info"
metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
metadata += "".join(f"Provides-Extra: {extra}\n" for extra in extras)
metadata += "".join(f"Requires-Dist: {spec}\n" for spec in requires)
files = {
    f"{module}/__init__.py": (
        f'__version__ = "{version}"\nORIGIN = "{name}"\n\n\n'
        f"def hello():\n    print(\"hello from {name} {version}\")\n"
    ),
    f"{dist_info}/METADATA": metadata,
    f"{dist_info}/WHEEL": (
        "Wheel-Version: 1.0\nGenerator: kuduhook-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    ),
}
if scripts:
    files[f"{dist_info}/entry_points.txt"] = "[console_scripts]\n" + "".join(
        f"{script} = {module}:hello\n" for script in scripts
    )

record = []
for path, text in files.items():
    data = text.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record.append(f"{path},sha256={digest},{len(data)}")
record.append(f"{dist_info}/RECORD,,")
files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"

os.makedirs(out, exist_ok=True)
wheel = os.path.join(out, f"{name}-{version}-py3-none-any.whl")
with zipfile.ZipFile(wheel, "w") as archive:
    for path, text in files.items():
        archive.writestr(path, text)
print(wheel)
