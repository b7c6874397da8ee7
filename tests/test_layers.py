"""The library never imports the book's wing or the command line (read from every module's imports with ast)."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "sketchode"
#: modules a library module may not import: the chapters' wing and the command line
UPPER = ("sketchode.book", "sketchode.__main__")


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
    if module.startswith(UPPER) or module == "sketchode.__main__":
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


def test_the_check_would_fail_on_a_wrong_way_import():
    assert wrong_way("from sketchode.book import real_data\n", "sketchode.train") == ["sketchode.book",
                                                                                       "sketchode.book.real_data"]
    assert wrong_way("import sketchode\n", "sketchode.checkpoint") == ["sketchode"]
    assert wrong_way("from ..book import x\n", "sketchode.data.augment") == ["sketchode.book", "sketchode.book.x"]
    assert wrong_way("from sketchode import fused\n", "sketchode.bench") == []  # a submodule, not the __init__
    assert wrong_way("from sketchode.train import fit\n", "sketchode.book") == []  # the wing may import the library


def test_the_front_door():
    import sketchode

    for name in ("SketchODE", "MultiStrokeSketchODE", "RNNAutoencoder", "load", "fit", "evaluate"):
        assert name in sketchode.__all__ and callable(getattr(sketchode, name))
