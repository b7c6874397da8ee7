"""Fail when a rendered page shows markdown or LaTeX that should have rendered.

Usage: python .ci/check_html.py _build/html

Looks at the visible text of every page (not code, not math that MathJax
typesets, not scripts) for
* raw markdown tables: a line ``| a | b |`` followed by a separator ``|---|---|``;
* raw LaTeX: ``$...$`` / ``$$`` spans or ``\\begin{...}`` / ``\\frac`` outside math containers;
* raw MyST: ``{cite}`` / ``{math}`` roles and ``:::`` / ```` ```{ ```` fences left as text.
Prints file, line of the text block and the offending snippet; exits 1 when any is found.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

SKIP_TAGS = {"script", "style", "pre", "code", "textarea", "math", "svg"}
MATH_CLASSES = ("math", "MathJax", "highlight", "nohighlight")

_DASH = r"(?:-{3,}|[\u2014\u2013]+)"  # smartquotes turns --- into an em dash
TABLE_SEP = re.compile(rf"^\s*\|?\s*:?{_DASH}:?\s*(\|\s*:?{_DASH}:?\s*)+\|?\s*$")
PATTERNS = [
    ("raw LaTeX", re.compile(r"\$\$|\\begin\{|\\frac\{|\\mathrm\{|(?<![\w$])\$[^$\s][^$]{0,80}\$(?![\w$])")),
    ("raw MyST role", re.compile(r"\{(cite|math|ref|doc|numref|eq)\}`")),
    ("raw MyST fence", re.compile(r"^\s*(:::|```\{)", re.M)),
]


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Visible(HTMLParser):
    """Collects the text a reader sees as prose: outside code, math, scripts and styles."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, hides its text from the check)
        self.blocks: list[tuple[int, str]] = []

    def handle_starttag(self, tag, attrs):
        if tag in VOID:
            return
        cls = (dict(attrs).get("class") or "").split()
        hidden = tag in SKIP_TAGS or any(c in MATH_CLASSES for c in cls)
        self.stack.append((tag, hidden or (bool(self.stack) and self.stack[-1][1])))

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        # pop to the matching open tag (tolerates implied closings such as an unclosed <p>)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if self.stack and self.stack[-1][1]:
            return
        if data.strip():
            self.blocks.append((self.getpos()[0], data))


def problems(html: str) -> list[tuple[int, str, str]]:
    p = Visible()
    p.feed(html)
    out = []
    text_lines = []
    for line_no, data in p.blocks:
        for kind, rx in PATTERNS:
            m = rx.search(data)
            if m:
                out.append((line_no, kind, data.strip()[:120]))
        text_lines += [(line_no, ln) for ln in data.splitlines()]
    for (n0, a), (_, b) in zip(text_lines, text_lines[1:]):
        if a.strip().startswith("|") and a.strip().endswith("|") and TABLE_SEP.match(b):
            out.append((n0, "raw markdown table", a.strip()[:120]))
    return out


def main(argv) -> int:
    root = Path(argv[1] if len(argv) > 1 else "_build/html")
    pages = sorted(p for p in root.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)
    if not pages:
        print(f"check_html: no pages under {root}")
        return 1
    bad = 0
    for page in pages:
        for line, kind, snippet in problems(page.read_text(encoding="utf-8")):
            print(f"{page.relative_to(root)}:{line}: {kind}: {snippet!r}")
            bad += 1
    print(f"check_html: {len(pages)} pages, {bad} problem(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
