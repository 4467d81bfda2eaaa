#!/usr/bin/python3
"""grafana.generated_up_to_date: deploy/grafana/generate.sh, run twice into temporary directories,
gives byte-identical output, and that output is what deploy/grafana/dashboards/ holds.

  uptodate.py SOURCE_DIR       (the repository root)
"""

import pathlib
import shutil
import subprocess
import sys
import tempfile


def generate(root, out):
    subprocess.run(["bash", str(root / "deploy/grafana/generate.sh"), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return {p.name: p.read_bytes() for p in sorted(out.glob("*.json"))}


def main(argv):
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    if shutil.which("jsonnet") is None:
        print("SKIP: jsonnet is not installed (apt-get install jsonnet)")
        return 77
    root = pathlib.Path(argv[0])
    committed_dir = root / "deploy/grafana/dashboards"
    committed = {p.name: p.read_bytes() for p in sorted(committed_dir.glob("*.json"))}
    with tempfile.TemporaryDirectory() as t1, tempfile.TemporaryDirectory() as t2:
        first = generate(root, pathlib.Path(t1))
        second = generate(root, pathlib.Path(t2))
    problems = []
    if first != second:
        problems.append("generate.sh is not deterministic: two runs differ in "
                        + ", ".join(sorted(n for n in set(first) | set(second) if first.get(n) != second.get(n))))
    for name in sorted(set(first) | set(committed)):
        if name not in committed:
            problems.append(f"{name}: generated but not committed in {committed_dir}")
        elif name not in first:
            problems.append(f"{name}: committed but no longer generated (remove it)")
        elif first[name] != committed[name]:
            a, b = committed[name].decode().splitlines(), first[name].decode().splitlines()
            line = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
            problems.append(f"{name}: differs from the jsonnet source from line {line + 1}"
                            f" (run bash deploy/grafana/generate.sh)")
    for p in problems:
        print("FAIL", p)
    if problems:
        return 1
    print(f"up to date: {len(first)} dashboards regenerated twice, identical to the committed JSON")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
