"""The rendered book works offline, opens in Colab and Binder, and has one search box.

* :func:`remote_assets` lists what a page loads from the network (``<script src>``,
  ``<link href>``, images, frames, CSS ``url()``/``@import``), never plain ``<a>`` links;
  :func:`remote_assets_in` runs it over a built ``_build/html`` folder.  The tests feed
  it small pages, check the book's configuration makes myst-nb and Sphinx load MathJax
  and the widget scripts from the build, and check a real build when one is there.
* The launch buttons, the Binder set-up and the dependencies keep an installed torch.
* The bibliography has numeric labels, citations read author-year.

Usage on a build: ``python tests/test_site.py _build/html`` prints every remote asset.
"""
from __future__ import annotations

import hashlib
import re
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STATIC = ROOT / "book" / "_static"

#: (tag, attribute) pairs whose URL the browser fetches when it shows the page
FETCHED = {("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src"), ("source", "src"),
           ("video", "src"), ("audio", "src"), ("embed", "src"), ("object", "data"), ("img", "srcset")}
REMOTE = re.compile(r"^\s*(?:https?:)?//", re.I)
CSS_URL = re.compile(r"""(?:url\(\s*['"]?|@import\s+['"])((?:https?:)?//[^'")\s]+)""", re.I)


class _Assets(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, str]] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        if tag == "style":
            self._in_style = True
        for name, value in attrs:
            if value and (tag, name) in FETCHED:
                for url in (value.split(",") if name == "srcset" else [value]):
                    url = url.strip().split(" ")[0]
                    if REMOTE.match(url):
                        self.found.append((tag, url))
            if name == "style" and value:
                self.found += [(tag, u) for u in CSS_URL.findall(value)]

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.found += [("style", u) for u in CSS_URL.findall(data)]


def remote_assets(html: str) -> list[tuple[str, str]]:
    """``(tag, url)`` of everything ``html`` makes the browser fetch from another host (``http(s)://``, ``//``)."""
    p = _Assets()
    p.feed(html)
    p.close()
    return p.found


def remote_assets_in(folder) -> dict[str, list[tuple[str, str]]]:
    """:func:`remote_assets` of every ``.html`` page, and the CSS ``url()``/``@import`` of every ``.css`` file,
    under a built site ``folder`` (e.g. ``_build/html``): ``{relative path: [(tag, url), ...]}``, files with none left out."""
    folder = Path(folder)
    out = {}
    for path in sorted(folder.rglob("*.html")):
        found = remote_assets(path.read_text(encoding="utf-8", errors="replace"))
        if found:
            out[path.relative_to(folder).as_posix()] = found
    for path in sorted(folder.rglob("*.css")):
        found = [("css", u) for u in CSS_URL.findall(path.read_text(encoding="utf-8", errors="replace"))]
        if found:
            out[path.relative_to(folder).as_posix()] = found
    return out


# ---------------------------------------------------------------- the checker, on small pages
def test_remote_scripts_and_stylesheets_are_listed():
    html = """<html><head>
      <script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
      <script src="//cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"></script>
      <link rel="stylesheet" href="http://fonts.example.org/a.css"/>
      <link rel="preload" href="HTTPS://cdn.example.org/font.woff2">
      <style>@import "https://fonts.googleapis.com/css?family=Roboto"; b {background: url('https://x.org/i.png')}</style>
    </head><body><img src="https://x.org/logo.png" srcset="a.png 1x, https://x.org/b.png 2x">
      <div style="background-image: url(https://x.org/bg.png)"></div></body></html>"""
    assert remote_assets(html) == [
        ("script", "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"),
        ("script", "//cdnjs.cloudflare.com/ajax/libs/require.js/2.3.4/require.min.js"),
        ("link", "http://fonts.example.org/a.css"),
        ("link", "HTTPS://cdn.example.org/font.woff2"),
        ("style", "https://fonts.googleapis.com/css?family=Roboto"),
        ("style", "https://x.org/i.png"),
        ("img", "https://x.org/logo.png"),
        ("img", "https://x.org/b.png"),
        ("div", "https://x.org/bg.png"),
    ]


def test_local_assets_links_and_inline_scripts_are_not_listed():
    html = """<head><script src="../_static/mathjax/tex-chtml.js"></script>
      <script src="_static/widgets/embed-amd.js?v=1"></script><link rel="stylesheet" href="../_static/a.css">
      <script>var u = "https://cdn.example.org/never-fetched.js";</script>
      <script type="application/vnd.jupyter.widget-state+json">{"url": "https://x.org"}</script>
      <img src="data:image/png;base64,AAAA"></head>
      <body><a href="https://colab.research.google.com/github/x/y">Colab</a>
      <a class="reference external" href="http://example.org">a link</a><p>https://not.a.load/</p></body>"""
    assert remote_assets(html) == []


def test_remote_assets_in_a_folder(tmp_path):
    (tmp_path / "book").mkdir()
    (tmp_path / "index.html").write_text('<a href="https://x.org">x</a><script src="_static/a.js"></script>')
    (tmp_path / "book" / "p.html").write_text('<script src="https://cdn.x.org/a.js"></script>')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "s.css").write_text('@font-face{src:url("https://x.org/f.woff2")} .a{background:url(i.png)}')
    assert remote_assets_in(tmp_path) == {"book/p.html": [("script", "https://cdn.x.org/a.js")],
                                          "_static/s.css": [("css", "https://x.org/f.woff2")]}


# ---------------------------------------------------------------- the book's configuration
def book_config() -> dict:
    yaml = pytest.importorskip("yaml")
    return yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))


def sphinx_config() -> dict:
    return book_config()["sphinx"]["config"]


def test_mathjax_is_served_from_the_build():
    sphinx = book_config()["sphinx"]
    path = sphinx["config"].get("mathjax_path", "https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js")
    assert not REMOTE.match(path), f"mathjax_path {path!r} loads MathJax from the network"
    # sphinx-mathjax-offline copies MathJax into _static/mathjax at the end of the build
    assert "sphinx-mathjax-offline" in sphinx["extra_extensions"]
    assert path.startswith("mathjax/")
    text = (ROOT / "pyproject.toml").read_text()
    book_extra = text.split("\nbook = [", 1)[1].split("]", 1)[0]
    assert '"sphinx-mathjax-offline' in book_extra, "the `book` extra must install the MathJax package"
    try:
        import importlib

        ext = importlib.import_module("sphinx-mathjax-offline")
    except ImportError:
        return
    assert (Path(ext.__file__).parent / "static" / path).is_file(), f"the MathJax package has no {path}"


def test_widget_scripts_are_served_from_the_build():
    """myst-nb adds these scripts to every page with widget state; its default loads them from CDNs."""
    from myst_nb.core.config import ipywidgets_js_factory

    cfg = sphinx_config()
    scripts = cfg.get("nb_ipywidgets_js", ipywidgets_js_factory())
    assert scripts, "no widget manager: the stored widgets would not show"
    static_dirs = [ROOT / p for p in cfg.get("html_static_path", [])]
    assert STATIC in static_dirs
    for path, attrs in scripts.items():
        assert not REMOTE.match(path), f"{path} is loaded from the network"
        # a crossorigin attribute makes a file:// page refuse the script
        assert "crossorigin" not in attrs and "integrity" not in attrs
        assert any((d / path).is_file() for d in static_dirs), f"{path} is not in {static_dirs}"
    names = {Path(p).name for p in scripts}
    assert {"require.js", "embed-amd.js"} <= names


def test_vendored_widget_scripts_match_their_recorded_sha256():
    readme = (STATIC / "widgets" / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, flags=re.M))
    assert set(table) == {"embed-amd.js", "require.js"}
    for name, digest in table.items():
        got = hashlib.sha256((STATIC / "widgets" / name).read_bytes()).hexdigest()
        assert got == digest, f"book/_static/widgets/{name} changed: update the table in its README.md"
    # no auto-added static folder (Jupyter Book adds every .js under ./_static to every page)
    assert not (ROOT / "_static").exists()


def test_final_sphinx_config_as_jupyter_book_builds_it():
    """The configuration Jupyter Book hands Sphinx (merging ours into its defaults) keeps all of it."""
    jb = pytest.importorskip("jupyter_book.config")
    cfg, _ = jb.get_final_config(user_yaml=ROOT / "_config.yml", sourcedir=ROOT,
                                 cli_config={"latex_individualpages": False})
    assert not REMOTE.match(cfg["mathjax_path"]) and "sphinx-mathjax-offline" in cfg["extensions"]
    assert all(not REMOTE.match(p) for p in cfg["nb_ipywidgets_js"])
    theme = cfg["html_theme_options"]
    # one search box: not also the PyData top bar's (sphinx-book-theme shows its own)
    assert theme["navbar_persistent"] == []
    assert theme["search_bar_text"] == "Search this book..."
    # the launch buttons (and what they need: the repository) survive the merge
    lb = theme["launch_buttons"]
    assert lb["binderhub_url"] == "https://mybinder.org"
    assert lb["colab_url"] == "https://colab.research.google.com"
    assert lb["notebook_interface"] == "jupyterlab"
    assert theme["repository_url"] == book_config()["repository"]["url"]
    assert theme["repository_branch"] == "main"
    assert cfg["bibtex_reference_style"] == "author_year"


def test_bibliography_labels_are_numbers():
    """The default (alpha) style labels entries like ``[YildizHLahdesmaki19]``; the book's style numbers them."""
    style_name = sphinx_config().get("bibtex_default_style", "alpha")
    pybtex_database = pytest.importorskip("pybtex.database")
    from pybtex.plugin import find_plugin

    bib = pybtex_database.parse_file(str(ROOT / "references.bib"))
    style = find_plugin("pybtex.style.formatting", style_name)()
    labels = [entry.label for entry in style.format_bibliography(bib)]
    assert len(labels) == len(bib.entries)
    assert labels == [str(i) for i in range(1, len(labels) + 1)], labels[:5]


def test_citations_read_author_year():
    assert sphinx_config().get("bibtex_reference_style") == "author_year"


# ---------------------------------------------------------------- Colab and Binder
def test_binder_installs_cpu_torch_then_the_package():
    post = ROOT / "binder" / "postBuild"
    text = post.read_text()
    assert post.stat().st_mode & 0o111, "binder/postBuild must be executable"
    lines = [ln for ln in text.splitlines() if ln.startswith("python -m pip install")]
    assert len(lines) == 2
    assert "--index-url https://download.pytorch.org/whl/cpu" in lines[0] and '"torch>=2.1,<3"' in lines[0]
    assert '-e ".[book,lab]"' in lines[1]
    assert (ROOT / "binder" / "runtime.txt").read_text().strip().startswith("python-3.")


def test_lab_extra_has_jupyterlab_and_the_notebook_runners():
    text = (ROOT / "pyproject.toml").read_text()
    lab = text.split("\nlab = [", 1)[1].split("]", 1)[0]
    for pkg in ("jupyterlab", "nbconvert", "nbclient", "ipykernel", "ipywidgets"):
        assert f'"{pkg}' in lab, pkg


def _requirements(dist: str, seen: set) -> list[tuple[str, str]]:
    """(distribution, requirement) for every requirement of ``dist`` and of the installed ones below it (no extras)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    if dist in seen:
        return []
    seen.add(dist)
    try:
        reqs = md.requires(dist) or []
    except md.PackageNotFoundError:
        return []
    out = []
    for r in reqs:
        req = Requirement(r)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        out.append((dist, r))
        out += _requirements(req.name, seen)
    return out


@pytest.mark.parametrize("colab_torch", ["2.1.0", "2.8.0+cu126", "2.9.0+cu126", "2.10.0+cu128"])
def test_no_dependency_makes_pip_replace_an_installed_torch(colab_torch):
    """Colab ships a CUDA build of torch: installing the package must accept it, not swap it for another."""
    pytest.importorskip("packaging")
    from packaging.requirements import Requirement
    from packaging.version import Version

    on_torch = [(d, r) for d, r in _requirements("sketchode", set()) if Requirement(r).name == "torch"]
    assert any(d == "sketchode" for d, _ in on_torch), on_torch
    for dist, r in on_torch:
        assert Requirement(r).specifier.contains(Version(colab_torch), prereleases=True), (
            f"{dist} requires {r}: pip would replace Colab's torch {colab_torch}")


# ---------------------------------------------------------------- a real build, when there is one
def test_built_site_loads_nothing_from_the_network():
    html = ROOT / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.skip("no book build in _build/html (jupyter-book build -W -n --keep-going .)")
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert (html / "_static" / "widgets" / "embed-amd.js").is_file()
    found = {page: assets for page, assets in remote_assets_in(html).items() if assets}
    assert not found, f"pages load from the network: {found}"


#: the one remote asset left in stored chapter outputs: matplotlib's JS animation template links Font Awesome 4.4
MATPLOTLIB_JSHTML_ICONS = ("link", "https://maxcdn.bootstrapcdn.com/font-awesome/4.4.0/css/font-awesome.min.css")


if __name__ == "__main__":  # pragma: no cover
    found = remote_assets_in(sys.argv[1] if len(sys.argv) > 1 else ROOT / "_build" / "html")
    for page, assets in found.items():
        for tag, url in assets:
            print(f"{page}: <{tag}> {url}")
    print(f"{sum(map(len, found.values()))} remote asset(s) in {len(found)} file(s)")
    sys.exit(1 if found else 0)
