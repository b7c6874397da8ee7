"""Ship a finished training run: copy its checkpoint and run log into data/checkpoints, scored on its test split.

Maintainer tool (outside the library).  ``python benchmarks/ship_run.py RUN.pt NAME`` copies ``RUN.pt`` to
``data/checkpoints/NAME.pt`` and its run log ``RUN.json`` to ``NAME.json`` (weight snapshots are not shipped),
adds the ``evaluate`` record of ``python -m sketchode evaluate data/checkpoints/NAME.pt --json`` and a note, and
rewrites the artifact registry.  It refuses to overwrite a shipped file unless ``--replace`` is given.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from sketchode.pretrained import write_registry

ROOT = Path(__file__).resolve().parents[1]


def main(run: str, name: str, replace: bool = False, note: str | None = None) -> dict:
    src = Path(run)
    log = src.with_suffix(".json")
    dst = ROOT / "data" / "checkpoints" / f"{name}.pt"
    if dst.exists() and not replace:
        raise SystemExit(f"{dst} exists: pass --replace to overwrite it")
    shutil.copyfile(src, dst)
    side = json.loads(log.read_text()) if log.exists() else {}
    side.pop("snapshots", None)
    side["checkpoint"] = dst.name
    side["note"] = note or (f"trained as runs/{src.name} by the commands below (1 CPU thread, the machine shared "
                            "with other work), then copied here; snapshots not shipped")
    cmd = [sys.executable, "-m", "sketchode", "evaluate", str(dst.relative_to(ROOT)), "--json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    side["evaluate"] = {"command": "python -m sketchode evaluate " + str(dst.relative_to(ROOT)) + " --json",
                        **json.loads(out)}
    dst.with_suffix(".json").write_text(json.dumps(side, indent=1) + "\n")
    write_registry()
    return side["evaluate"]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run")
    ap.add_argument("name")
    ap.add_argument("--replace", action="store_true")
    ap.add_argument("--note")
    a = ap.parse_args()
    print(json.dumps(main(a.run, a.name, a.replace, a.note), indent=1))
