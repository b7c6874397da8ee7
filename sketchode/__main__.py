"""Command line: ``python -m sketchode`` (or the ``sketchode`` script).

Subcommands
-----------
``info``
    the package version, the data root in use and which datasets are present there.
``data NAME [--split S] [--svg PATH]``
    load a dataset, print its size, classes and a summary; optionally export
    the first drawing as SVG.

Training, evaluation and benchmarks are added by the model chapters.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys


def _info(args) -> int:
    import sketchode
    from sketchode.config import DATA_ENV, data_root
    from sketchode.data.datasets import available

    root = data_root(args.data_root)
    local = available(root, local=True)
    qd = [n for n in local if n.startswith("quickdraw")]
    out = {
        "version": sketchode.__version__,
        "data_root": str(root),
        "data_root_from": "--data-root" if args.data_root else (DATA_ENV if DATA_ENV in __import__("os").environ else "user cache"),
        "datasets_present": [n for n in local if not n.startswith("quickdraw")],
        "quickdraw_categories_present": len(qd),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:30s} {v}")
    return 0


def _data(args) -> int:
    from sketchode.data import load

    sk = load(args.name, split=args.split, root=args.data_root)
    labels = collections.Counter(s.label for s in sk)
    pts = [s.n_points for s in sk]
    strokes = [s.n_strokes for s in sk]
    out = {
        "name": args.name,
        "split": args.split,
        "drawings": len(sk),
        "classes": len(labels),
        "timed": sum(s.timed for s in sk),
        "points_mean": round(sum(pts) / max(len(pts), 1), 1),
        "strokes_mean": round(sum(strokes) / max(len(strokes), 1), 2),
    }
    if args.svg and sk:
        from sketchode.plot import save_svg

        save_svg(sk[0].normalize(), args.svg)
        out["svg"] = args.svg
    print(json.dumps(out) if args.json else "\n".join(f"{k:14s} {v}" for k, v in out.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sketchode", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pi = sub.add_parser("info", help="version, data root and the datasets present there")
    pi.add_argument("--data-root", default=None)
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(func=_info)
    pd = sub.add_parser("data", help="load a dataset and summarise it")
    pd.add_argument("name")
    pd.add_argument("--split", default="train")
    pd.add_argument("--data-root", default=None)
    pd.add_argument("--svg", default=None, help="write the first drawing as SVG here")
    pd.add_argument("--json", action="store_true")
    pd.set_defaults(func=_data)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"sketchode {args.cmd}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
