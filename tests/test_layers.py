"""The layers of the package, read from every module's imports with ast.

The library never imports the book's wing or the command line; inside the library each layer imports only
the layers below it (:data:`RANK`): settings < data, numerics < models, plot, pretrained < training < evaluation.
"""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sketchode"
#: modules a library module may not import: the chapters' wing and the command line
UPPER = ("sketchode.book", "sketchode.cli", "sketchode.__main__")
#: the library's layers: a module may import its own layer's modules and lower ranks only
RANK = {"sketchode._version": 0, "sketchode.settings": 0, "sketchode.accel": 0, "sketchode.data": 1,
        "sketchode.numerics": 1, "sketchode.models": 2, "sketchode.plot": 2, "sketchode.pretrained": 2,
        "sketchode.training": 3, "sketchode.evaluation": 4}


def layer(module: str):
    """The library layer of a module name (``sketchode.models.encoder`` -> ``sketchode.models``), or None."""
    parts = module.split(".")
    for n in (2, 1):
        if ".".join(parts[:n]) in RANK:
            return ".".join(parts[:n])
    return None


def upward_in_library(source: str, module: str) -> list[str]:
    """Imports of a library module that reach a higher layer (``models`` importing ``evaluation``)."""
    own = layer(module)
    if own is None:
        return []
    return sorted(n for n in imports_of(source, module)
                  if (other := layer(n)) is not None and other != own and RANK[other] > RANK[own])


def imports_of(source: str, module: str) -> set[str]:
    """Absolute names a module imports (relative imports resolved against ``module``)."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            subs = {a.name for a in node.names if _is_module(f"{name}.{a.name}")}
            if len(subs) < len(node.names):  # names taken from the module itself, not submodules of it
                out.add(name)
            out |= {f"{name}.{a.name}" for a in node.names}
    return out


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (PKG.parent / rel).with_suffix(".py").is_file() or (PKG.parent / rel / "__init__.py").is_file()


def wrong_way(source: str, module: str) -> list[str]:
    if module.startswith(UPPER):
        return []
    return sorted(n for n in imports_of(source, module) if n.startswith(UPPER) or n == "sketchode")


def _modules():
    for f in sorted(PKG.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), f.read_text(encoding="utf-8")


def test_the_library_imports_neither_the_book_wing_nor_the_command_line():
    bad = {m: w for m, src in _modules() if m != "sketchode" and (w := wrong_way(src, m))}
    assert not bad, f"library modules importing upward (or the package's own __init__): {bad}"


def test_each_library_layer_imports_only_the_layers_below():
    bad = {m: w for m, src in _modules() if (w := upward_in_library(src, m))}
    assert not bad, f"library modules importing a higher layer: {bad}"


def test_every_library_module_has_a_layer():
    loose = [m for m, _ in _modules() if m != "sketchode" and not m.startswith(UPPER) and layer(m) is None]
    assert not loose, f"modules outside the library's layers, the book wing and the command line: {loose}"


def test_the_check_would_fail_on_a_wrong_way_import():
    assert upward_in_library("from sketchode.evaluation.scores import reconstruct_full\n",
                             "sketchode.models.full_sequence") == ["sketchode.evaluation.scores",
                                                                   "sketchode.evaluation.scores.reconstruct_full"]
    assert upward_in_library("from sketchode.plot import plot_sketch\n", "sketchode.data.augment") == [
        "sketchode.plot", "sketchode.plot.plot_sketch"]
    assert upward_in_library("from sketchode.data.sketch import Sketch\n", "sketchode.models.encoder") == []
    assert wrong_way("from sketchode.book import real_data\n", "sketchode.training.fit") == ["sketchode.book",
                                                                                       "sketchode.book.real_data"]
    assert wrong_way("import sketchode\n", "sketchode.training.checkpoint") == ["sketchode"]
    assert wrong_way("from ..book import x\n", "sketchode.data.augment") == ["sketchode.book", "sketchode.book.x"]
    assert wrong_way("from sketchode.numerics import fused\n", "sketchode.cli.bench") == []  # a submodule, not the __init__
    assert wrong_way("from sketchode.training.fit import fit\n", "sketchode.book") == []  # the wing may import the library


def test_the_front_door():
    import sketchode

    for name in ("SketchODE", "MultiStrokeSketchODE", "RNNAutoencoder", "load", "fit", "evaluate"):
        assert name in sketchode.__all__ and callable(getattr(sketchode, name))


def test_no_measurements_in_library_docstrings():
    """Machine-specific measurements live on the book's Measurements page, not in the library's docstrings."""
    import re

    lib = [(m, src) for m, src in _modules() if not m.startswith(UPPER)]
    found = [m for m, src in lib if re.search(r"\(measured|Measured \(|measured with|\bms/step\b", src)]
    assert not found, found
