"""Tests for sketchode.plot: rasterisation, SVG, figures, animation."""

import xml.etree.ElementTree as ET

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sketchode import plot as P  # noqa: E402
from sketchode.data.sketch import Sketch  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"


def line(x0, y0, x1, y1, n=2, t0=0.0):
    return np.column_stack([np.linspace(x0, x1, n), np.linspace(y0, y1, n), t0 + np.arange(n)])


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------ rasterize
def test_horizontal_line_one_row_band_and_symmetric():
    img = P.rasterize(Sketch([line(-1, 0, 1, 0, n=5)]), size=28, linewidth=1.0)
    assert img.shape == (28, 28) and img.dtype == np.float32
    rows = np.flatnonzero(img.max(axis=1) > 0)
    # the line lies on the boundary between rows 13 and 14: a two-row band, half intensity
    assert set(rows) == {13, 14}
    np.testing.assert_allclose(img[13, 3:25], 0.5, atol=1e-6)
    np.testing.assert_allclose(img, img[:, ::-1], atol=1e-6)  # left-right symmetric
    np.testing.assert_allclose(img, img[::-1, :], atol=1e-6)  # up-down symmetric
    # ink spans the box minus the padding (0.1 * 28 = 2.8 px each side)
    cols = np.flatnonzero(img.max(axis=0) > 0)
    assert cols.min() == 2 and cols.max() == 25


def test_background_zero_and_range():
    th = np.linspace(0, 2 * np.pi, 50)
    sk = Sketch([np.column_stack([np.cos(th), np.sin(th), th]), line(-0.3, 0, 0.3, 0.2)])
    img = P.rasterize(sk, size=32, linewidth=2.0)
    assert img.min() >= 0.0 and img.max() <= 1.0
    assert img.max() == 1.0
    assert img[0].max() == 0 and img[:, 0].max() == 0  # padding stays empty
    assert img[15:17, 6:11].max() == 0  # between circle and inner line
    # a sequence with no ink is an empty image
    no_ink = np.column_stack([np.zeros(5), np.arange(5.0), np.ones(5)])
    assert P.rasterize(no_ink).max() == 0


def test_penup_segments_not_drawn():
    sk = Sketch([line(-1, 0, -0.8, 0, n=3), line(0.8, 0, 1, 0, n=3, t0=3)])
    img = P.rasterize(sk, size=28)
    ink_cols = np.flatnonzero(img.max(axis=0) > 0)
    assert ink_cols.min() < 6 and ink_cols.max() > 21
    assert img[:, 7:21].max() == 0
    # the same through a full sequence (pen-up join samples present)
    img2 = P.rasterize(sk.to_full_sequence(join_points=4), size=28)
    assert img2[:, 7:21].max() == 0


def test_aspect_preserved_and_upright():
    # a tall thin "L": vertical bar of height 2 and a foot of length 1 at the bottom
    sk = Sketch([np.array([[0, 2, 0], [0, 0, 1], [1, 0, 2]], float)])
    img = P.rasterize(sk, size=40, linewidth=1.0, padding=0.1)
    rows = np.flatnonzero(img.max(axis=1) > 0.25)
    cols = np.flatnonzero(img.max(axis=0) > 0.25)
    h, w = rows.max() - rows.min(), cols.max() - cols.min()
    assert h == pytest.approx(32, abs=1.5) and w == pytest.approx(16, abs=1.5)
    foot_row = rows.max()  # y up in the drawing -> the foot is at the bottom of the image
    assert img[foot_row, cols.max()] > 0.25 and img[rows.min(), cols.max()] == 0
    assert abs((cols.min() + cols.max()) / 2 - 19.5) <= 1  # centred


def test_single_point_stroke_is_a_dot():
    sk = Sketch([line(-1, 0, 1, 0), np.array([[0.0, 1.0, 5.0]])])
    img = P.rasterize(sk, size=28, linewidth=2.0)
    assert img[4:9, 12:16].max() > 0.5


def test_batch_equals_per_sample():
    g = torch.Generator().manual_seed(0)
    B, G = 6, 40
    xy = torch.cumsum(torch.randn(B, G, 2, generator=g) * 0.1, 1)
    pen = (torch.rand(B, G, generator=g) < 0.2).float()
    pen[1, 10] = 0.0
    pen[1, 9] = pen[1, 11] = 1.0  # an isolated ink sample (a dot)
    pen[2] = 1.0  # no ink at all
    seqs = torch.cat([xy, pen[..., None]], -1)
    out = P.rasterize_batch(seqs, size=28, linewidth=1.5)
    assert out.shape == (B, 1, 28, 28) and out.dtype == torch.float32
    ref = np.stack([P.rasterize(s, size=28, linewidth=1.5) for s in seqs.numpy()])
    np.testing.assert_allclose(out[:, 0].numpy(), ref, atol=1e-4)
    assert out[2].max() == 0
    # numpy input and (B, G, 4) t, x, y, pen input give the same
    t = torch.linspace(0, 5, G).expand(B, G)[..., None]
    out4 = P.rasterize_batch(torch.cat([t, seqs], -1).numpy(), size=28, linewidth=1.5)
    torch.testing.assert_close(out4, out)


# ------------------------------------------------------------------------ SVG
def _svg_paths(svg):
    root = ET.fromstring(svg)
    paths = root.findall(f".//{SVG_NS}path")
    pts = []
    for p in paths:
        nums = p.get("d").replace("M", " ").replace("L", " ").split()
        pts.append(np.array(nums, float).reshape(-1, 2))
    return root, pts


def test_svg_structure_and_orientation(tmp_path):
    sk = Sketch([line(0, 0, 0, 2, n=4), line(0, 2, 1.2, 2, t0=5), np.array([[0.5, 1.0, 9.0]])])
    svg = P.to_svg(sk, size=100, padding=0.1)
    root, pts = _svg_paths(svg)
    assert root.tag == f"{SVG_NS}svg"
    assert root.get("viewBox") == "0 0 100 100"
    assert len(pts) == sk.n_strokes
    assert [len(p) for p in pts] == [4, 2, 2]  # the dot is a zero-length path
    allp = np.concatenate(pts)
    assert allp.min() >= 0 and allp.max() <= 100
    # the vertical stroke goes up in y: svg y decreases
    assert pts[0][-1, 1] < pts[0][0, 1]
    # the higher bar (y = 2) is above the dot (y = 1) in svg coordinates
    assert pts[1][0, 1] < pts[2][0, 1]
    # aspect: height 2 spans 80 units, width 1.2 spans 48
    assert np.ptp(allp[:, 1]) == pytest.approx(80, abs=0.01)
    assert np.ptp(allp[:, 0]) == pytest.approx(48, abs=0.01)
    f = P.save_svg(sk, tmp_path / "a.svg")
    ET.parse(f)


# -------------------------------------------------------------------- figures
def test_plot_sketch_segments_and_penup():
    sk = Sketch([line(0, 0, 1, 0, n=5), line(0, 1, 1, 1, n=3, t0=5), np.array([[0.5, 0.5, 9.0]])])
    ax = P.plot_sketch(sk, show_penup=True)
    ink, penup = ax.collections[0], [c for c in ax.collections if c.get_label() == "pen-up"][0]
    assert len(ink.get_segments()) == 4 + 2
    assert len(penup.get_segments()) == 2
    assert ink.get_array() is not None and np.all(np.diff(ink.get_array()) >= 0)
    assert ax.get_xticks().size == 0 and ax.get_yticks().size == 0
    assert ax.get_aspect() == 1.0
    lo, hi = ax.get_ylim()
    assert lo < hi  # y up

    ax2 = P.plot_sketch(sk.to_full_sequence(), color_by_time=False, title="t")
    assert len(ax2.collections[0].get_segments()) == 4 + 2
    assert ax2.get_title() == "t"


def test_plot_grid():
    sks = [Sketch([line(0, 0, 1, k + 1)], label=str(k)) for k in range(5)]
    fig = P.plot_grid(sks, ncols=3, titles="label")
    axes = fig.axes
    assert len(axes) == 6
    assert [a.get_title() for a in axes[:5]] == ["0", "1", "2", "3", "4"]
    assert not axes[5].axison


# ------------------------------------------------------------------ animation
def test_animate_frames_and_html():
    th = np.linspace(0, 2 * np.pi, 30)
    sk = Sketch([np.column_stack([np.cos(th), np.sin(th), th]), line(-0.5, 0, 0.5, 0, t0=7)])
    anim = P.animate(sk, frames=5, interval=40)
    ink = anim._fig.axes[0].collections[0]
    n_seg = []
    for k in range(5):
        anim._func(k)
        n_seg.append(len(ink.get_segments()))
    assert n_seg[0] <= 1 and n_seg[-1] == 29 + 1 and np.all(np.diff(n_seg) >= 0)
    html = P.animation_html(anim)
    assert "<script" in html
    assert html.count("data:image/png") == 6  # the finished drawing first, then frames 0..4


def test_animation_opens_on_the_finished_drawing_and_needs_no_network():
    """Issue 14: animations showed one red dot before play, and their buttons loaded Font Awesome from a CDN."""
    import matplotlib

    matplotlib.use("Agg")
    from sketchode.data import load
    from sketchode.plot import animate, animation_html

    sk = load("digits")[0].normalize()
    anim = animate(sk, frames=5)
    order = list(anim.new_frame_seq())
    assert order == [4, 0, 1, 2, 3, 4]  # the finished drawing, then the drawing in time
    anim._func(order[0])
    full = len(anim._fig.axes[0].collections[0].get_segments())
    anim._func(0)
    assert full > 0 and len(anim._fig.axes[0].collections[0].get_segments()) < full
    html = animation_html(anim)
    assert "https://" not in html.split("<script")[0] and "font-awesome" not in html
    assert ".fa-play:before" in html


def test_one_colour_per_model_across_chapters():
    from sketchode.plot import MODEL_COLORS, model_color

    assert model_color("SketchODE") == model_color("sketchode-f0.10-s1") == MODEL_COLORS["SketchODE"]
    assert model_color("LSTM-LSTM") == model_color("digits-rnn") == model_color("LSTM") == MODEL_COLORS["LSTM"]
    assert MODEL_COLORS["SketchODE"] != MODEL_COLORS["LSTM"] and model_color("tanh") is None
