"""The book's table of contents and the notebooks nbval validates must agree.

Validation can never silently stop: every chapter in `_toc.yml` exists, every
notebook in `book/` is in `_toc.yml`, and pytest's own collection (with the
project's configuration) picks up every notebook chapter.
"""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def toc_files():
    text = (ROOT / "_toc.yml").read_text()
    entries = re.findall(r"^\s*(?:-\s*)?(?:file|root):\s*([^\s#]+)", text, flags=re.M)
    assert entries, "_toc.yml lists no files"
    return entries


def resolve(entry):
    for suffix in (".ipynb", ".md"):
        p = ROOT / (entry + suffix)
        if p.exists():
            return p
    raise AssertionError(f"_toc.yml lists {entry!r} but neither .ipynb nor .md exists")


def test_toc_entries_exist():
    for e in toc_files():
        resolve(e)


def test_every_notebook_is_in_toc():
    listed = {resolve(e) for e in toc_files()}
    on_disk = {p for p in (ROOT / "book").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts}
    missing = sorted(str(p.relative_to(ROOT)) for p in on_disk - listed)
    assert not missing, f"notebooks not in _toc.yml (neither built nor validated): {missing}"


def test_pytest_collects_every_chapter():
    notebooks = [p for p in map(resolve, toc_files()) if p.suffix == ".ipynb"]
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "book"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    ).stdout
    for nb in notebooks:
        rel = nb.relative_to(ROOT).as_posix()
        assert f"{rel}::" in out, f"nbval does not collect {rel}; collection output:\n{out[-2000:]}"


def test_glued_values_are_plain_python():
    """Glue a float, not a numpy/torch scalar: myst-nb cannot format 'np.float64(0.5)' (bug met in chapters 12, 13)."""
    import json

    bad = []
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        for cell in json.loads(nb.read_text())["cells"]:
            for out in cell.get("outputs", []):
                name = (out.get("metadata") or {}).get("scrapbook", {}).get("name")
                text = "".join(out.get("data", {}).get("application/papermill.record/text/plain", ""))
                if name and re.match(r"^(np\.|numpy\.|torch\.|tensor\()", text):
                    bad.append(f"{nb.name}: {name} = {text[:40]}")
    assert not bad, "glue plain Python numbers (float(x), int(x)):\n" + "\n".join(bad)
