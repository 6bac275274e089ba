# Shared by the bench scripts: timing, medians, ratios, and the generated file tree.
# Source it after setting $work (a scratch folder).

now() { date +%s%N; }

# ms COMMAND...: runs the command quietly, prints its wall time in milliseconds. A failure
# stops the benchmark with the command's output.
ms() {
  local start end
  start=$(now)
  "$@" >"$work/last.log" 2>&1 || { echo "failed: $*" >&2; cat "$work/last.log" >&2; exit 1; }
  end=$(now)
  echo $(((end - start) / 1000000))
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2))}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) b = 1; printf "%.1fx", a / b }'; }

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
