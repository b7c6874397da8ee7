"""Embedded synthetic handwriting: a stand-in for VectorMNIST (paper section 5.1; chapter 1).

The paper's VectorMNIST (1000 digits traced by hand, then grown with Perlin
augmentation, section 4.6) is not public.  So that the book runs offline,
this module *generates* handwritten-looking digits and capital letters, with
timestamps, from a few hand-made stroke templates per class:

1. **Templates.**  Each class has one or more *variants* (stroke count and
   order: a 4 or a 7 in one or two strokes, a 1 with or without a flag and a
   base, a 5 with its bar drawn first or last, ...), each a list of strokes
   given as control points in a box about 0.7 wide and 1 high; some points
   are marked as corners.
2. **Per-writer variation** (all vectorised over the samples of a variant):
   Gaussian jitter of the control points; a smooth curve through them
   (centripetal Catmull-Rom between corners, slightly rounded at corners);
   a random affine map (slant/shear, rotation, aspect, scale, shift); a smooth
   Perlin warp of the plane (:func:`sketchode.data.augment.perlin2d`).
3. **Pen dynamics.**  Speed along each stroke follows the two-thirds power law
   of handwriting (speed proportional to curvature^(-1/3)), slowed further at
   the start and end of the stroke; a writer-specific speed sets the scale.
   The stroke is then sampled at (slightly irregular) equal *time* steps of
   about 8-13 ms, like a digitiser: points crowd at corners and ends, so time
   is **not** proportional to arc length.  Strokes have 20-80 points.  Pen-up
   gaps between strokes take a reaction time plus the travel at pen-up speed.

**Styles.**  ``digits(..., style="default")`` (the default) gives the drawings
above, unchanged bit for bit across versions (chapters, notebook outputs and
shipped checkpoints depend on them).  ``style="wide"`` (dataset
``digits-wide``) widens them towards real handwriting: many more hand-made
variants (1s with a lead-in stroke, 9s with curved, J-like or long straight
tails, crossed 7s, 8s started elsewhere or in two loops, angular 2s, 3s, 5s
and 9s, ...; :func:`_wide_digit_templates`) and wider per-writer variation
(:data:`STYLES`: slant, rotation, aspect, proportions, sloppiness, misplaced
strokes, warp).  Its templates are typed in by hand like the others -- no
real drawing is copied or fitted.  ``benchmarks/embedded_vs_real.py``
measures how well a recognizer trained only on them reads the real UCI
pen-based digits.

Coordinates: y points up; a character is about 1 unit high (times a random
scale near 1), sitting near the origin.  Time: milliseconds from the first
pen-down (``timed=True``).  Output order interleaves classes (sample ``i`` has
class ``i % n_classes``), keys are ``"digits:000123"`` / ``"letters:000123"``,
and ``meta["variant"]`` names the template variant.  Everything is drawn from
``numpy.random.SeedSequence([seed, dataset, class])``: the same seed gives the
same drawings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from sketchode.data.augment import perlin2d
from sketchode.data.sketch import Sketch

DIGITS = "0123456789"
#: Capital letters with templates.
LETTERS = "ABCDEFHKLMNOTVXZ"

# ---------------------------------------------------------------- knobs
_JITTER = 0.022  # sd of control-point jitter (character heights)
_SEG_DENSE = 20  # dense samples per spline segment
_WARP_AMP = 0.05  # Perlin warp amplitude (heights)
_WARP_FREQ = 1.4  # Perlin warp frequency (cells per height)
_MIN_PTS, _MAX_PTS = 20, 80


@dataclass(frozen=True)
class _Style:
    """Per-writer variation of one generator style (see :data:`STYLES`).

    The first group is what the ``"default"`` style has always used (its
    values are the module constants above, so its drawings are bit for bit
    those of earlier versions).  The second group is off (0) in the default
    style -- and then draws no random numbers at all -- and on in ``"wide"``:

    ``jitter``
        sd of the Gaussian jitter of every control point (heights; 0.6 times
        that on long, finely sampled templates).
    ``warp_amp``, ``warp_freq``
        amplitude (heights) and frequency (cells per height) of the smooth
        Perlin warp of the plane.
    ``shear``
        mean and sd of the slant (x += shear * y).
    ``rot_sd``, ``aspect_sd``, ``scale_sd``
        sd of the rotation (degrees), of log width/height and of log size.
    ``speed_sd``
        sd of the log writer speed (median 5 heights per second).
    ``bend``
        sd of the *proportion* remap of the template box, drawn per writer
        for x and for y: ``y -> y + b * y * (1 - y)`` (``|b| <= 0.8``, so it
        stays monotone), and the same on ``x`` over the box width 0.7.  It
        moves where the parts of a character meet: a 9's head grows or
        shrinks against its tail, a 6's loop, a 4's bar or an 8's waist goes
        up or down, a 5's belly gets deeper.
    ``sloppy``
        sd of a per-writer log factor on ``jitter`` (careful and careless
        writers).
    ``stroke_shift``
        sd (heights) of an extra offset of every stroke after the first, the
        misplacement of a pen that was lifted (a 4's stem, a 7's crossbar, a
        5's bar land a little off).
    """

    jitter: float = _JITTER
    warp_amp: float = _WARP_AMP
    warp_freq: float = _WARP_FREQ
    shear: tuple = (0.18, 0.12)
    rot_sd: float = 4.0
    aspect_sd: float = 0.1
    scale_sd: float = 0.12
    speed_sd: float = 0.25
    bend: float = 0.0
    sloppy: float = 0.0
    stroke_shift: float = 0.0


#: The generator styles: ``"default"`` (the drawings of :func:`digits` and
#: :func:`letters` as they have always been) and ``"wide"`` (more template
#: variants, wider slant, aspect, rotation, proportions and warp; :func:`digits`
#: with ``style="wide"``, dataset ``digits-wide``).
STYLES = {
    "default": _Style(),
    "wide": _Style(jitter=0.03, warp_amp=0.08, shear=(0.15, 0.2), rot_sd=7.0, aspect_sd=0.25,
                   speed_sd=0.35, bend=0.35, sloppy=0.3, stroke_shift=0.04),
}


class _C(tuple):
    """A control point marked as a corner."""


def C(x: float, y: float) -> _C:
    return _C((x, y))


def _arc(cx, cy, rx, ry, a0, a1, n):
    """Control points on an elliptic arc, angles in degrees (counter-clockwise positive)."""
    a = np.deg2rad(np.linspace(a0, a1, n))
    return [(cx + rx * np.cos(t), cy + ry * np.sin(t)) for t in a]


@dataclass(frozen=True)
class _Stroke:
    points: np.ndarray  # (K, 2)
    corners: tuple  # indices of corner points (interior)


def _stroke(pts) -> _Stroke:
    arr = np.array([tuple(p) for p in pts], dtype=np.float64)
    corners = tuple(i for i, p in enumerate(pts) if isinstance(p, _C) and 0 < i < len(pts) - 1)
    return _Stroke(arr, corners)


@dataclass(frozen=True)
class _Variant:
    name: str
    prob: float
    strokes: tuple


def _v(name, prob, *strokes) -> _Variant:
    return _Variant(name, prob, tuple(_stroke(s) for s in strokes))


# ------------------------------------------------------------- templates
def _digit_templates() -> dict[str, list[_Variant]]:
    zero_ccw = _arc(0.33, 0.5, 0.3, 0.5, 95, 95 + 370, 11)
    zero_cw = _arc(0.33, 0.5, 0.3, 0.5, 80, 80 - 370, 11)
    return {
        "0": [_v("0/ccw", 0.75, zero_ccw), _v("0/cw", 0.25, zero_cw)],
        "1": [
            _v("1/plain", 0.5, [(0.36, 1.0), (0.34, 0.5), (0.32, 0.0)]),
            _v("1/flag", 0.35, [(0.2, 0.76), (0.29, 0.87), C(0.38, 1.0), (0.35, 0.5), (0.32, 0.0)]),
            _v("1/flag-base", 0.15, [(0.2, 0.76), (0.29, 0.87), C(0.38, 1.0), (0.35, 0.5), (0.32, 0.0)],
               [(0.08, 0.0), (0.55, 0.0)]),
        ],
        "2": [
            _v("2/plain", 0.7, [(0.04, 0.76), (0.16, 0.94), (0.36, 1.0), (0.56, 0.92), (0.62, 0.74),
                                (0.52, 0.52), (0.28, 0.26), C(0.02, 0.0), (0.34, 0.01), (0.68, 0.0)]),
            _v("2/loop", 0.3, [(0.04, 0.76), (0.16, 0.94), (0.36, 1.0), (0.56, 0.92), (0.62, 0.74),
                               (0.52, 0.52), (0.28, 0.26), (0.06, 0.04), (0.1, -0.03), (0.2, 0.06),
                               (0.16, 0.06), (0.4, 0.0), (0.68, 0.02)]),
        ],
        "3": [
            _v("3/round", 1.0, [(0.04, 0.86), (0.22, 0.99), (0.45, 0.99), (0.6, 0.85), (0.52, 0.64),
                                C(0.26, 0.54), (0.52, 0.47), (0.65, 0.28), (0.55, 0.06), (0.3, 0.0),
                                (0.03, 0.1)]),
        ],
        "4": [
            _v("4/closed-two", 0.35, [(0.48, 1.0), (0.24, 0.66), C(0.02, 0.32), (0.36, 0.32), (0.7, 0.33)],
               [(0.5, 0.98), (0.5, 0.5), (0.49, 0.0)]),
            _v("4/open-two", 0.4, [(0.08, 1.0), (0.06, 0.7), C(0.04, 0.42), (0.36, 0.42), (0.68, 0.43)],
               [(0.55, 0.96), (0.54, 0.5), (0.53, 0.0)]),
            _v("4/one-stroke", 0.25, [(0.08, 1.0), (0.06, 0.7), C(0.04, 0.42), (0.3, 0.42), C(0.54, 0.43),
                                      (0.56, 0.75), C(0.57, 1.0), (0.54, 0.5), (0.52, 0.0)]),
        ],
        "5": [
            _v("5/bar-last", 0.5, [(0.14, 1.0), (0.12, 0.8), C(0.1, 0.58), (0.3, 0.64), (0.52, 0.6),
                                   (0.64, 0.4), (0.58, 0.14), (0.38, 0.0), (0.16, 0.0), (0.02, 0.1)],
               [(0.14, 1.0), (0.4, 1.01), (0.64, 1.02)]),
            _v("5/one-stroke", 0.5, [(0.64, 1.02), (0.4, 1.01), C(0.14, 1.0), (0.12, 0.8), C(0.1, 0.58),
                                     (0.3, 0.64), (0.52, 0.6), (0.64, 0.4), (0.58, 0.14), (0.38, 0.0),
                                     (0.16, 0.0), (0.02, 0.1)]),
        ],
        "6": [
            _v("6/loop", 1.0, [(0.56, 0.98), (0.34, 0.93), (0.16, 0.75), (0.05, 0.45), (0.08, 0.15),
                               (0.3, 0.0), (0.52, 0.08), (0.6, 0.28), (0.5, 0.46), (0.3, 0.5), (0.12, 0.4),
                               (0.07, 0.28)]),
        ],
        "7": [
            _v("7/plain", 0.65, [(0.02, 1.0), (0.35, 1.0), C(0.68, 1.0), (0.46, 0.5), (0.26, 0.0)]),
            _v("7/crossbar", 0.35, [(0.02, 1.0), (0.35, 1.0), C(0.68, 1.0), (0.46, 0.5), (0.26, 0.0)],
               [(0.22, 0.5), (0.42, 0.5), (0.64, 0.51)]),
        ],
        "8": [
            _v("8/s-start", 1.0, [(0.6, 0.88), (0.36, 1.0), (0.12, 0.9), (0.13, 0.7), (0.35, 0.54),
                                  (0.58, 0.36), (0.6, 0.13), (0.35, 0.0), (0.1, 0.12), (0.13, 0.34),
                                  (0.36, 0.52), (0.56, 0.7), (0.58, 0.9)]),
        ],
        "9": [
            _v("9/one-stroke", 0.7, [(0.58, 0.86), (0.44, 0.98), (0.22, 0.98), (0.07, 0.85), (0.08, 0.66),
                                     (0.27, 0.56), (0.5, 0.62), C(0.62, 0.94), (0.6, 0.5), (0.55, 0.0)]),
            _v("9/two-stroke", 0.3, [(0.58, 0.86), (0.44, 0.98), (0.22, 0.98), (0.07, 0.85), (0.08, 0.66),
                                     (0.27, 0.56), (0.5, 0.62), (0.6, 0.8), (0.57, 0.92)],
               [(0.62, 0.98), (0.6, 0.5), (0.55, 0.0)]),
        ],
    }


def _letter_templates() -> dict[str, list[_Variant]]:
    bowl_d = [(0.05, 1.0), (0.3, 0.98), (0.55, 0.82), (0.64, 0.5), (0.55, 0.18), (0.3, 0.02), (0.05, 0.0)]
    bumps_b = [(0.05, 1.0), (0.32, 1.0), (0.52, 0.92), (0.54, 0.72), (0.34, 0.55), C(0.06, 0.52),
               (0.4, 0.5), (0.6, 0.36), (0.6, 0.13), (0.38, 0.0), (0.05, 0.0)]
    return {
        "A": [
            _v("A/tent", 0.7, [(0.0, 0.0), (0.18, 0.5), C(0.36, 1.0), (0.54, 0.5), (0.72, 0.0)],
               [(0.16, 0.4), (0.56, 0.4)]),
            _v("A/three", 0.3, [(0.36, 1.0), (0.18, 0.5), (0.0, 0.0)], [(0.36, 1.0), (0.54, 0.5), (0.72, 0.0)],
               [(0.16, 0.4), (0.56, 0.4)]),
        ],
        "B": [
            _v("B/spine-first", 0.6, [(0.05, 1.0), (0.05, 0.5), (0.05, 0.0)], bumps_b),
            _v("B/one-stroke", 0.4, [(0.05, 0.0), (0.05, 0.5)] + [C(0.05, 1.0)] + bumps_b[1:]),
        ],
        "C": [_v("C/arc", 1.0, _arc(0.4, 0.5, 0.38, 0.5, 50, 310, 9))],
        "D": [
            _v("D/spine-first", 0.6, [(0.05, 1.0), (0.05, 0.5), (0.05, 0.0)], bowl_d),
            _v("D/one-stroke", 0.4, [(0.05, 0.0), (0.05, 0.5)] + [C(0.05, 1.0)] + bowl_d[1:]),
        ],
        "E": [
            _v("E/four", 0.5, [(0.05, 1.0), (0.05, 0.5), (0.05, 0.0)], [(0.05, 1.0), (0.55, 1.0)],
               [(0.05, 0.52), (0.45, 0.52)], [(0.05, 0.0), (0.58, 0.0)]),
            _v("E/two", 0.5, [(0.56, 1.0), (0.3, 1.0), C(0.05, 1.0), (0.05, 0.5), C(0.05, 0.0), (0.3, 0.0),
                              (0.58, 0.0)], [(0.05, 0.52), (0.45, 0.52)]),
        ],
        "F": [
            _v("F/two", 0.5, [(0.56, 1.0), (0.3, 1.0), C(0.05, 1.0), (0.05, 0.5), (0.05, 0.0)],
               [(0.05, 0.52), (0.42, 0.52)]),
            _v("F/three", 0.5, [(0.05, 1.0), (0.05, 0.5), (0.05, 0.0)], [(0.05, 1.0), (0.56, 1.0)],
               [(0.05, 0.52), (0.42, 0.52)]),
        ],
        "H": [
            _v("H/bar-last", 0.7, [(0.05, 1.0), (0.05, 0.0)], [(0.62, 1.0), (0.62, 0.0)],
               [(0.05, 0.5), (0.62, 0.5)]),
            _v("H/bar-second", 0.3, [(0.05, 1.0), (0.05, 0.0)], [(0.05, 0.5), (0.62, 0.5)],
               [(0.62, 1.0), (0.62, 0.0)]),
        ],
        "K": [_v("K/two", 1.0, [(0.05, 1.0), (0.05, 0.0)],
                 [(0.6, 1.0), (0.32, 0.75), C(0.06, 0.45), (0.33, 0.23), (0.62, 0.0)])],
        "L": [_v("L/one", 1.0, [(0.05, 1.0), (0.05, 0.5), C(0.05, 0.0), (0.3, 0.0), (0.56, 0.0)])],
        "M": [
            _v("M/one", 0.7, [(0.0, 0.0), (0.03, 0.5), C(0.06, 1.0), C(0.37, 0.3), C(0.68, 1.0), (0.71, 0.5),
                              (0.74, 0.0)]),
            _v("M/two", 0.3, [(0.06, 1.0), (0.03, 0.5), (0.0, 0.0)],
               [(0.06, 1.0), C(0.37, 0.3), C(0.68, 1.0), (0.71, 0.5), (0.74, 0.0)]),
        ],
        "N": [_v("N/one", 1.0, [(0.05, 0.0), (0.05, 0.5), C(0.05, 1.0), C(0.6, 0.0), (0.6, 0.5), (0.6, 1.0)])],
        "O": [_v("O/ccw", 1.0, _arc(0.38, 0.5, 0.38, 0.5, 95, 95 + 370, 11))],
        "T": [_v("T/bar-first", 0.8, [(0.0, 1.0), (0.33, 1.0), (0.66, 1.0)], [(0.33, 1.0), (0.33, 0.5), (0.33, 0.0)]),
              _v("T/stem-first", 0.2, [(0.33, 1.0), (0.33, 0.5), (0.33, 0.0)], [(0.0, 1.0), (0.33, 1.0), (0.66, 1.0)])],
        "V": [_v("V/one", 1.0, [(0.0, 1.0), (0.17, 0.5), C(0.33, 0.0), (0.5, 0.5), (0.66, 1.0)])],
        "X": [_v("X/two", 1.0, [(0.0, 1.0), (0.32, 0.5), (0.64, 0.0)], [(0.64, 1.0), (0.32, 0.5), (0.0, 0.0)])],
        "Z": [_v("Z/one", 1.0, [(0.02, 1.0), (0.33, 1.0), C(0.64, 1.0), (0.33, 0.5), C(0.0, 0.0), (0.33, 0.0),
                                (0.66, 0.0)])],
    }


def _reweigh(variants: list[_Variant], probs: dict[str, float]) -> list[_Variant]:
    return [_Variant(v.name, probs[v.name], v.strokes) for v in variants]


def _wide_digit_templates() -> dict[str, list[_Variant]]:
    """Templates of the ``"wide"`` style: every default variant (with new weights) plus these.

    All are hand-made (control points typed in, like the default ones), to
    cover styles of real handwriting the default set lacks:

    * ``0/open``: the oval stops short of its start; ``0/overlap``: starts at
      the upper right and overshoots well past its start.
    * ``1/lead-in``: a long straight up-stroke from the left at mid height to
      the top of the stem, then the stem (the commonest continental 1);
      ``1/lead-in-low``: the same from lower down, the stem slanting back;
      ``1/lead-in-base``: with a base stroke drawn after a pen lift;
      ``1/lead-in-flat``: a nearly level lead-in just under the top;
      ``1/base-corner``: a short lead-in, a slanting stem and, without a pen
      lift, a base to the right; ``1/slant-base``: the same with the stem
      slanting far to the left;
      ``1/hook``: a short curved serif.
    * ``2/z``: an angular 2 (straight diagonal, sharp corners, flat base);
      ``2/tall-hook``: a round head reaching far right, a long base;
      ``2/narrow-head``: a small head on a long diagonal to a sharp corner.
    * ``3/flat-top``: a straight top bar and a pointed middle (a Z-like 3);
      ``3/small-top``: a small upper bowl on a large lower one.
    * ``4/slant-open``: the first stroke slants down to the left before the
      bar, which runs out past a shorter stem; ``4/round``: the first stroke
      curves into the bar (a U-like 4) and the stem crosses it;
      ``4/one-stroke-slant``: slanted first stroke, bar, up the stem and
      back down it without a pen lift.
    * ``5/bar-first``: the bar, then stem and belly in a second stroke;
      ``5/angular``: straight stem, belly with a corner, bar last;
      ``5/curl``: the belly curls back in towards the stem, bar last;
      ``5/bar-back``: one stroke, the bar drawn to the right and back before
      the stem; ``5/short-stem``: the stem starts low, the bar (last) starts
      above it, further left.
    * ``6/small-loop``: a long sweeping stem into a small low loop;
      ``6/straight``: a straight diagonal stem into the loop.
    * ``7/tick-crossbar``: the top bar begins with a small down-tick and a
      crossbar is added; ``7/curved``: a curved stem, with a crossbar;
      ``7/long-crossbar``: a crossbar from far left to past the stem.
    * ``8/mirror``: starts at the upper left and goes right first;
      ``8/waist-start``: starts at the crossing, going up to the right;
      ``8/two-loops``: two ovals, top then bottom, in two strokes;
      ``8/hourglass``: an angular 8 of straight lines (top bar, diagonal,
      bottom bar, diagonal back); ``8/overshoot``: ``8/s-start`` that
      runs on past its start along the top, ending at the upper left.
    * ``9/curved-tail``: the tail sweeps down and round to the left;
      ``9/long-tail``: a small head on a long straight slanting tail;
      ``9/angular``: a triangular head and a straight tail;
      ``9/j-tail``: a small head high on the right, the tail straight down
      and then sweeping left along the bottom, like a J;
      ``9/open-head``: the head is not closed -- over, round and straight
      on down into a tail that curls left;
      ``9/left-start``: the head starts at its left side and is drawn
      clockwise over the top, then the tail.
    """
    base = {c: list(v) for c, v in _digit_templates().items()}
    zero = _arc(0.33, 0.5, 0.3, 0.5, 95, 95 + 335, 11)
    zero_over = _arc(0.33, 0.5, 0.3, 0.5, 60, 60 + 410, 12)
    belly = [(0.3, 0.64), (0.52, 0.6), (0.64, 0.4), (0.58, 0.14), (0.38, 0.0), (0.16, 0.0), (0.02, 0.1)]  # a 5's
    head = [(0.58, 0.86), (0.44, 0.98), (0.22, 0.98), (0.07, 0.85), (0.08, 0.66), (0.27, 0.56), (0.5, 0.62)]
    new = {
        "0": [_v("0/open", 0.15, zero), _v("0/overlap", 0.15, zero_over)],
        "1": [
            _v("1/lead-in", 0.3, [(0.0, 0.55), (0.2, 0.77), C(0.42, 1.0), (0.4, 0.5), (0.37, 0.0)]),
            _v("1/lead-in-low", 0.15, [(0.0, 0.35), (0.22, 0.68), C(0.45, 1.0), (0.36, 0.5), (0.26, 0.0)]),
            _v("1/lead-in-base", 0.15, [(0.02, 0.6), (0.22, 0.8), C(0.42, 1.0), (0.4, 0.5), (0.38, 0.0)],
               [(0.1, 0.0), (0.4, 0.0), (0.7, 0.01)]),
            _v("1/lead-in-flat", 0.1, [(0.0, 0.84), (0.22, 0.92), C(0.44, 1.0), (0.42, 0.5), (0.4, 0.0)]),
            _v("1/base-corner", 0.1, [(0.06, 0.78), (0.22, 0.9), C(0.4, 1.0), (0.33, 0.5), C(0.26, 0.0),
                                      (0.5, 0.0), (0.72, 0.01)]),
            _v("1/slant-base", 0.1, [(0.1, 0.72), (0.26, 0.86), C(0.46, 1.0), (0.27, 0.5), C(0.06, 0.0),
                                     (0.4, 0.0), (0.74, 0.0)]),
            _v("1/hook", 0.1, [(0.1, 0.8), (0.2, 0.95), C(0.4, 1.0), (0.38, 0.5), (0.36, 0.0)]),
        ],
        "2": [
            _v("2/z", 0.25, [(0.04, 0.78), (0.3, 0.98), C(0.6, 0.96), (0.32, 0.46), C(0.0, 0.0), (0.35, 0.0),
                             (0.7, 0.0)]),
            _v("2/tall-hook", 0.15, [(0.1, 0.7), (0.18, 0.92), (0.4, 1.0), (0.62, 0.88), (0.62, 0.66),
                                     (0.42, 0.4), C(0.06, 0.0), (0.4, 0.02), (0.74, 0.0)]),
            _v("2/narrow-head", 0.2, [(0.18, 0.8), (0.3, 0.96), (0.44, 1.0), (0.54, 0.88), (0.46, 0.66),
                                      (0.24, 0.3), C(0.02, 0.02), (0.36, 0.01), (0.7, 0.0)]),
        ],
        "3": [
            _v("3/flat-top", 0.25, [(0.04, 1.0), (0.34, 1.0), C(0.62, 1.0), C(0.3, 0.58), (0.55, 0.5),
                                    (0.65, 0.27), (0.52, 0.05), (0.26, 0.0), (0.02, 0.1)]),
            _v("3/small-top", 0.2, [(0.12, 0.88), (0.27, 0.99), (0.45, 0.97), (0.52, 0.84), (0.45, 0.7),
                                    C(0.28, 0.64), (0.55, 0.55), (0.66, 0.3), (0.55, 0.06), (0.3, 0.0),
                                    (0.02, 0.08)]),
        ],
        "4": [
            _v("4/slant-open", 0.2, [(0.3, 1.0), (0.15, 0.7), C(0.0, 0.38), (0.36, 0.4), (0.74, 0.42)],
               [(0.52, 0.85), (0.5, 0.4), (0.48, 0.0)]),
            _v("4/round", 0.15, [(0.06, 1.0), (0.05, 0.7), (0.1, 0.45), (0.3, 0.38), (0.7, 0.42)],
               [(0.5, 1.0), (0.5, 0.5), (0.5, 0.0)]),
            _v("4/one-stroke-slant", 0.1, [(0.4, 1.0), (0.2, 0.7), C(0.0, 0.38), (0.3, 0.4), C(0.6, 0.42),
                                           (0.6, 0.66), C(0.6, 0.86), (0.58, 0.4), (0.56, 0.0)]),
        ],
        "5": [
            _v("5/bar-first", 0.15, [(0.14, 1.0), (0.4, 1.01), (0.64, 1.02)],
               [(0.14, 1.0), (0.12, 0.8), C(0.1, 0.58), (0.3, 0.64), (0.52, 0.6), (0.64, 0.4), (0.58, 0.14),
                (0.38, 0.0), (0.16, 0.0), (0.02, 0.1)]),
            _v("5/angular", 0.2, [(0.16, 1.0), (0.12, 0.75), C(0.08, 0.52), (0.4, 0.58), C(0.64, 0.45),
                                  (0.6, 0.15), (0.35, 0.0), (0.02, 0.04)],
               [(0.16, 1.0), (0.45, 1.0), (0.7, 1.0)]),
            _v("5/bar-back", 0.1, [(0.14, 1.0), (0.4, 1.01), C(0.66, 1.02), (0.4, 1.0), C(0.14, 0.99), (0.12, 0.8),
                                   C(0.1, 0.58)] + belly),
            _v("5/short-stem", 0.1, [(0.14, 0.8), (0.12, 0.7), C(0.1, 0.56)] + belly,
               [(0.08, 1.0), (0.38, 1.01), (0.66, 1.02)]),
            _v("5/curl", 0.15, [(0.14, 1.0), (0.12, 0.8), C(0.1, 0.58), (0.3, 0.64), (0.52, 0.6), (0.64, 0.4),
                                (0.58, 0.14), (0.38, 0.0), (0.16, 0.02), (0.08, 0.12), (0.14, 0.24)],
               [(0.14, 1.0), (0.4, 1.01), (0.64, 1.02)]),
        ],
        "6": [
            _v("6/small-loop", 0.3, [(0.62, 1.0), (0.38, 0.86), (0.18, 0.62), (0.06, 0.32), (0.1, 0.08),
                                     (0.3, 0.0), (0.52, 0.05), (0.58, 0.2), (0.46, 0.34), (0.26, 0.35),
                                     (0.08, 0.25)]),
            _v("6/straight", 0.2, [(0.64, 1.0), (0.4, 0.7), (0.15, 0.35), (0.05, 0.12), (0.2, 0.0),
                                   (0.46, 0.03), (0.56, 0.2), (0.42, 0.36), (0.2, 0.34), (0.06, 0.2)]),
        ],
        "7": [
            _v("7/tick-crossbar", 0.2, [(0.0, 0.84), C(0.03, 1.0), (0.35, 1.0), C(0.68, 1.0), (0.46, 0.5),
                                        (0.26, 0.0)], [(0.22, 0.5), (0.44, 0.5), (0.66, 0.51)]),
            _v("7/curved", 0.15, [(0.02, 1.0), (0.35, 1.02), C(0.68, 1.0), (0.54, 0.7), (0.42, 0.35),
                                  (0.36, 0.0)], [(0.25, 0.5), (0.48, 0.5), (0.7, 0.5)]),
            _v("7/long-crossbar", 0.15, [(0.02, 1.0), (0.35, 1.0), C(0.68, 1.0), (0.46, 0.5), (0.26, 0.0)],
               [(0.05, 0.45), (0.4, 0.47), (0.75, 0.49)]),
        ],
        "8": [
            _v("8/mirror", 0.2, [(0.1, 0.88), (0.34, 1.0), (0.58, 0.9), (0.57, 0.7), (0.35, 0.54), (0.12, 0.36),
                                 (0.1, 0.13), (0.35, 0.0), (0.6, 0.12), (0.57, 0.34), (0.34, 0.52), (0.14, 0.7),
                                 (0.12, 0.9)]),
            _v("8/waist-start", 0.2, [(0.36, 0.52), (0.56, 0.7), (0.56, 0.9), (0.35, 1.0), (0.13, 0.9),
                                      (0.13, 0.7), (0.35, 0.52), (0.6, 0.32), (0.58, 0.1), (0.35, 0.0),
                                      (0.1, 0.1), (0.12, 0.32), (0.34, 0.5)]),
            _v("8/two-loops", 0.1, _arc(0.35, 0.76, 0.2, 0.24, 0, 365, 9), _arc(0.35, 0.27, 0.27, 0.27, 90, 455, 10)),
            _v("8/overshoot", 0.2, [(0.6, 0.88), (0.36, 1.0), (0.12, 0.9), (0.13, 0.7), (0.35, 0.54),
                                    (0.58, 0.36), (0.6, 0.13), (0.35, 0.0), (0.1, 0.12), (0.13, 0.34),
                                    (0.36, 0.52), (0.56, 0.7), (0.58, 0.9), (0.42, 1.0), (0.2, 0.97)]),
            _v("8/hourglass", 0.1, [(0.62, 1.0), (0.35, 1.0), C(0.08, 1.0), (0.35, 0.5), C(0.62, 0.0), (0.35, 0.0),
                                    C(0.08, 0.0), (0.35, 0.5), (0.6, 0.98)]),
        ],
        "9": [
            _v("9/curved-tail", 0.3, head + [C(0.62, 0.94), (0.6, 0.55), (0.52, 0.2), (0.34, 0.02), (0.08, 0.0)]),
            _v("9/long-tail", 0.2, [(0.6, 0.9), (0.45, 1.0), (0.25, 0.98), (0.12, 0.87), (0.15, 0.72),
                                    (0.35, 0.66), (0.55, 0.72), C(0.65, 0.95), (0.45, 0.45), (0.2, 0.0)]),
            _v("9/angular", 0.15, [(0.62, 0.96), C(0.1, 0.98), C(0.1, 0.62), (0.4, 0.64), C(0.64, 0.92),
                                   (0.5, 0.45), (0.34, 0.0)]),
            _v("9/j-tail", 0.25, [(0.62, 0.92), (0.5, 1.0), (0.32, 0.97), (0.26, 0.84), (0.36, 0.72), (0.55, 0.76),
                                  C(0.64, 0.96), (0.64, 0.6), (0.62, 0.25), (0.5, 0.05), (0.25, 0.0), (0.0, 0.04)]),
            _v("9/open-head", 0.15, [(0.6, 0.95), (0.4, 1.0), (0.15, 0.95), (0.06, 0.8), (0.15, 0.65),
                                     (0.4, 0.62), (0.6, 0.7), (0.62, 0.5), (0.55, 0.2), (0.35, 0.0), (0.05, 0.02)]),
            _v("9/left-start", 0.1, [(0.08, 0.72), (0.1, 0.9), (0.3, 1.0), (0.52, 0.94), (0.6, 0.78),
                                     (0.45, 0.62), (0.22, 0.62), (0.14, 0.74), (0.35, 0.86), C(0.6, 0.88),
                                     (0.56, 0.45), (0.5, 0.0)]),
        ],
    }
    old = {
        "0": {"0/ccw": 0.5, "0/cw": 0.2},
        "1": {"1/plain": 0.15, "1/flag": 0.1, "1/flag-base": 0.05},
        "2": {"2/plain": 0.4, "2/loop": 0.2},
        "3": {"3/round": 0.55},
        "4": {"4/closed-two": 0.2, "4/open-two": 0.3, "4/one-stroke": 0.15},
        "5": {"5/bar-last": 0.4, "5/one-stroke": 0.25},
        "6": {"6/loop": 0.5},
        "7": {"7/plain": 0.2, "7/crossbar": 0.3},
        "8": {"8/s-start": 0.5},
        "9": {"9/one-stroke": 0.15, "9/two-stroke": 0.1},
    }
    return {c: _reweigh(base[c], old[c]) + new[c] for c in DIGITS}


_TEMPLATES = {"digits": _digit_templates(), "letters": _letter_templates(), "digits-wide": _wide_digit_templates()}


# ------------------------------------------------------------ curve maths
def _catmull_rom(P: np.ndarray, m: int) -> np.ndarray:
    """Centripetal Catmull-Rom through ``P`` (``(n, K, 2)``), ``m`` samples per segment: ``(n, m*(K-1)+1, 2)``.

    End tangents come from reflected phantom points; vectorised over samples
    and segments (Barry-Goldman pyramid).
    """
    n, K, _ = P.shape
    if K == 2:
        u = np.linspace(0.0, 1.0, m + 1)[None, :, None]
        return P[:, :1] + u * (P[:, 1:2] - P[:, :1])
    ext = np.concatenate([2 * P[:, :1] - P[:, 1:2], P, 2 * P[:, -1:] - P[:, -2:-1]], axis=1)
    P0, P1, P2, P3 = ext[:, :-3], ext[:, 1:-2], ext[:, 2:-1], ext[:, 3:]  # (n, S, 2)

    def knot(a, b):
        return np.sqrt(np.hypot(*(b - a).transpose(2, 0, 1))) + 1e-9  # (n, S)

    t0 = np.zeros(P1.shape[:2])
    t1 = t0 + knot(P0, P1)
    t2 = t1 + knot(P1, P2)
    t3 = t2 + knot(P2, P3)
    s = np.arange(m) / m  # (m,)
    T = t1[..., None] + s * (t2 - t1)[..., None]  # (n, S, m)
    Q0, Q1, Q2, Q3 = (q[:, :, None, :] for q in (P0, P1, P2, P3))
    t0, t1, t2, t3 = (x[..., None] for x in (t0, t1, t2, t3))
    A1 = ((t1 - T) / (t1 - t0))[..., None] * Q0 + ((T - t0) / (t1 - t0))[..., None] * Q1
    A2 = ((t2 - T) / (t2 - t1))[..., None] * Q1 + ((T - t1) / (t2 - t1))[..., None] * Q2
    A3 = ((t3 - T) / (t3 - t2))[..., None] * Q2 + ((T - t2) / (t3 - t2))[..., None] * Q3
    B1 = ((t2 - T) / (t2 - t0))[..., None] * A1 + ((T - t0) / (t2 - t0))[..., None] * A2
    B2 = ((t3 - T) / (t3 - t1))[..., None] * A2 + ((T - t1) / (t3 - t1))[..., None] * A3
    Cc = ((t2 - T) / (t2 - t1))[..., None] * B1 + ((T - t1) / (t2 - t1))[..., None] * B2
    out = Cc.reshape(n, -1, 2)
    return np.concatenate([out, P[:, -1:]], axis=1)


def _dense_stroke(P: np.ndarray, corners: tuple) -> np.ndarray:
    """A dense curve through control points ``(n, K, 2)``, split into C1 pieces at corners."""
    cuts = [0, *corners, P.shape[1] - 1]
    pieces = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        c = _catmull_rom(P[:, a:b + 1], _SEG_DENSE)
        pieces.append(c if not pieces else c[:, 1:])
    return np.concatenate(pieces, axis=1)


def _gauss_kernel(sigma: float) -> np.ndarray:
    r = max(1, int(np.ceil(3 * sigma)))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    return k / k.sum()


def _smooth(a: np.ndarray, sigma: float, keep_ends: bool = True) -> np.ndarray:
    """Gaussian smoothing along axis 1 of ``(n, M, ...)`` (edge padding), vectorised by shifts."""
    k = _gauss_kernel(sigma)
    r = len(k) // 2
    pad = [(0, 0)] * a.ndim
    pad[1] = (r, r)
    ap = np.pad(a, pad, mode="edge")
    M = a.shape[1]
    out = sum(w * ap[:, i:i + M] for i, w in enumerate(k))
    if keep_ends:
        out[:, 0] = a[:, 0]
        out[:, -1] = a[:, -1]
    return out


def _rowwise_interp(tau: np.ndarray, vals: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-row linear interpolation: ``tau`` ``(n, M)`` strictly increasing, ``vals`` ``(n, M, c)``, ``q`` ``(n, Q)``."""
    n, M = tau.shape
    span = float(tau.max() - tau.min()) + 1.0
    off = (np.arange(n) * 2 * span)[:, None]
    flat = (tau + off).ravel()
    idx = np.searchsorted(flat, (q + off).ravel(), side="right").reshape(q.shape) - 1
    idx = np.clip(idx - np.arange(n)[:, None] * M, 0, M - 2)
    rows = np.arange(n)[:, None]
    ta, tb = tau[rows, idx], tau[rows, idx + 1]
    w = np.clip((q - ta) / (tb - ta), 0.0, 1.0)[..., None]
    return vals[rows, idx] * (1 - w) + vals[rows, idx + 1] * w


def _time_sample(curve: np.ndarray, speed: np.ndarray, dt_ms: np.ndarray, rng) -> tuple:
    """Sample dense curves at (jittered) equal time steps.

    ``curve`` ``(n, M, 2)``; ``speed`` ``(n,)`` writer speed in heights per
    second; ``dt_ms`` ``(n,)`` sampling interval.  Returns ``xy`` ``(n, Q, 2)``,
    ``t`` ``(n, Q)`` in ms from the stroke start, and counts ``(n,)``.
    """
    n, M, _ = curve.shape
    d = np.diff(curve, axis=1)
    ds = np.hypot(d[..., 0], d[..., 1]) + 1e-9  # (n, M-1)
    ang = np.arctan2(d[..., 1], d[..., 0])
    turn = np.abs(np.angle(np.exp(1j * np.diff(ang, axis=1))))  # (n, M-2)
    kappa = turn / (0.5 * (ds[:, 1:] + ds[:, :-1]))
    kappa = np.concatenate([kappa[:, :1], kappa, kappa[:, -1:]], axis=1)  # (n, M)
    kappa = _smooth(kappa, 2.0, keep_ends=False)
    s = np.concatenate([np.zeros((n, 1)), np.cumsum(ds, axis=1)], axis=1)
    L = s[:, -1:]
    edge = np.minimum(s, L - s) / (0.12 * L + 0.04)
    env = 0.22 + 0.78 * np.clip(edge, 0, 1) ** 0.7
    v = (kappa + 1.5) ** (-1.0 / 3.0) * env * 1.3 * speed[:, None]  # heights / s
    v_mid = 0.5 * (v[:, 1:] + v[:, :-1])
    tau = np.concatenate([np.zeros((n, 1)), np.cumsum(1000.0 * ds / v_mid, axis=1)], axis=1)  # ms
    dur = tau[:, -1]
    cnt = np.clip(np.rint(dur / dt_ms).astype(int) + 1, _MIN_PTS, _MAX_PTS)
    Q = int(cnt.max())
    steps = 1.0 + 0.12 * (rng.random((n, Q - 1)) - 0.5)
    steps = np.where(np.arange(Q - 1)[None, :] < (cnt - 1)[:, None], steps, 0.0)
    q = np.concatenate([np.zeros((n, 1)), np.cumsum(steps, axis=1)], axis=1)
    q = q / q[:, -1:] * dur[:, None]
    q[:, -1] = np.minimum(q[:, -1], dur)
    xy = _rowwise_interp(tau, curve, q)
    return xy, q, cnt


def _affine(n: int, rng, style: _Style = STYLES["default"]) -> np.ndarray:
    """Per-writer 2x2 maps: slant (shear), rotation, aspect, scale (ranges from ``style``)."""
    shear = rng.normal(style.shear[0], style.shear[1], n)
    rot = np.deg2rad(rng.normal(0.0, style.rot_sd, n))
    aspect = np.exp(rng.normal(0.0, style.aspect_sd, n))
    scale = np.exp(rng.normal(0.0, style.scale_sd, n))
    c, s = np.cos(rot), np.sin(rot)
    R = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    S = np.zeros((n, 2, 2))
    S[:, 0, 0] = 1.0
    S[:, 0, 1] = shear
    S[:, 1, 1] = 1.0
    D = np.zeros((n, 2, 2))
    D[:, 0, 0] = aspect * scale
    D[:, 1, 1] = scale
    return R @ S @ D


def _bend(P: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    """Proportion remap of control points ``(n, K, 2)`` (:class:`_Style` ``bend``): monotone quadratics."""
    x, y = P[..., 0], P[..., 1]
    w = 0.7  # template box width
    return np.stack([x + bx[:, None] * x * (w - x) / w, y + by[:, None] * y * (1.0 - y)], -1)


def _render_variant(var: _Variant, n: int, rng, style: _Style = STYLES["default"]) -> list[list[np.ndarray]]:
    """``n`` drawings of one template variant: a list (per drawing) of ``(n_k, 3)`` strokes.

    The random numbers are drawn in a fixed order; the knobs that are off in
    ``style`` (``bend``, ``sloppy``, ``stroke_shift`` = 0) draw none, so the
    default style reproduces the drawings of earlier versions exactly.
    """
    if style.bend:
        bx, by = np.clip(rng.normal(0.0, style.bend, (2, n)), -0.8, 0.8)
    if style.sloppy:
        care = np.exp(rng.normal(0.0, style.sloppy, n))[:, None, None]
    dense, bounds = [], [0]
    for k, st in enumerate(var.strokes):
        # long, finely sampled templates (ovals) get less jitter per point, or they go lumpy
        sd = style.jitter if len(st.points) <= 6 else 0.6 * style.jitter
        if style.sloppy:
            P = st.points[None] + sd * care * rng.standard_normal((n, *st.points.shape))
        else:
            P = st.points[None] + rng.normal(0.0, sd, (n, *st.points.shape))
        if style.stroke_shift and k > 0:
            P = P + rng.normal(0.0, style.stroke_shift, (n, 1, 2))
        if style.bend:
            P = _bend(P, bx, by)
        c = _dense_stroke(P, st.corners)
        dense.append(c)
        bounds.append(bounds[-1] + c.shape[1])
    allp = np.concatenate(dense, axis=1)  # (n, M, 2)
    centre = np.array([0.33, 0.5])
    A = _affine(n, rng, style)
    allp = np.einsum("nij,nmj->nmi", A, allp - centre) + centre
    off = rng.uniform(0, 256, (n, 1, 2))
    q = style.warp_freq * allp + off
    warp = np.stack([perlin2d(q[..., 0] + 5.0, q[..., 1]), perlin2d(q[..., 0] - 5.0, q[..., 1] + 17.0)], -1)
    allp = allp + style.warp_amp * warp
    allp = allp + rng.normal(0.0, 0.05, (n, 1, 2))
    speed = np.exp(rng.normal(np.log(5.0), style.speed_sd, n))  # heights per second
    dt_ms = rng.uniform(8.0, 13.0, n)
    out = [[] for _ in range(n)]
    t_end = np.zeros(n)
    prev_end = None
    for k in range(len(var.strokes)):
        c = _smooth(allp[:, bounds[k]:bounds[k + 1]], 1.2)
        xy, t, cnt = _time_sample(c, speed, dt_ms, rng)
        if prev_end is not None:
            gap = np.hypot(*(c[:, 0] - prev_end).T)
            t_end = t_end + rng.uniform(60.0, 220.0, n) + 1000.0 * gap / (2.5 * speed)
        tt = t + t_end[:, None]
        pts = np.concatenate([xy, tt[..., None]], axis=2)
        for i in range(n):
            out[i].append(pts[i, :cnt[i]])
        t_end = tt[np.arange(n), cnt - 1]
        prev_end = c[:, -1]
    return out


def _generate(dataset: str, classes: Sequence[str], n_per_class: int, seed: int,
              style: str = "default") -> list[Sketch]:
    """Drawings of ``classes`` from the templates ``dataset`` (``"digits"``, ``"letters"``, ``"digits-wide"``)."""
    look = STYLES[style]
    templates = _TEMPLATES[dataset]
    missing = [c for c in classes if c not in templates]
    if missing:
        raise ValueError(f"{dataset}: no template for classes {missing}; available: {''.join(templates)}")
    if n_per_class < 0:
        raise ValueError(f"{dataset}: n_per_class must be >= 0, got {n_per_class}")
    dataset_word = {"digits": 1, "letters": 2, "digits-wide": 3}[dataset]
    per_class = []
    for c in classes:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), dataset_word, ord(c)]))
        variants = templates[c]
        p = np.array([v.prob for v in variants])
        choice = rng.choice(len(variants), size=n_per_class, p=p / p.sum())
        drawings: list = [None] * n_per_class
        for vi, var in enumerate(variants):
            idx = np.flatnonzero(choice == vi)
            if idx.size == 0:
                continue
            for i, strokes in zip(idx, _render_variant(var, idx.size, rng, look)):
                drawings[i] = (strokes, var.name)
        per_class.append(drawings)
    out = []
    nc = len(classes)
    for j in range(n_per_class):
        for ci, c in enumerate(classes):
            strokes, name = per_class[ci][j]
            out.append(Sketch(strokes, label=c, timed=True, key=f"{dataset}:{j * nc + ci:06d}",
                              meta={"variant": name, "source": "synthetic"} if style == "default" else
                              {"variant": name, "source": "synthetic", "style": style}))
    return out


def digits(n_per_class: int = 1000, seed: int = 0, style: str = "default") -> list[Sketch]:
    """Synthetic handwritten digits "0".."9", ``n_per_class`` of each (stand-in for VectorMNIST, paper 5.1).

    Timed (ms), y up, about one unit high; deterministic for a ``seed``.
    Sample ``i`` has label ``str(i % 10)`` and key ``"digits:%06d" % i``.
    Variants (``meta["variant"]``) include one- and two-stroke 4s and 7s,
    1s with or without flag and base, 5s with the bar first or last.

    ``style="wide"`` (dataset ``digits-wide``) draws from a larger set of
    hand-made variants -- 1s with a lead-in stroke, 9s with a curved or long
    straight tail, 7s with crossbars, 8s started elsewhere or drawn as two
    loops, angular 2s, 3s and 5s, ... (:func:`_wide_digit_templates`) -- with
    wider per-writer variation (slant, rotation, aspect, proportions, jitter,
    warp, misplaced strokes: :data:`STYLES`).  Its keys are
    ``"digits-wide:%06d"``, its ``meta`` also holds ``"style": "wide"``, and
    its random streams are separate from the default style's.  The default
    style's drawings are unchanged, bit for bit.
    """
    if style not in STYLES:
        raise ValueError(f"digits: style must be one of {sorted(STYLES)}, got {style!r}")
    if style == "default":
        return _generate("digits", DIGITS, int(n_per_class), seed)
    return _generate("digits-" + style, DIGITS, int(n_per_class), seed, style=style)


def letters(n_per_class: int = 1000, seed: int = 0, classes: str | Sequence[str] = LETTERS) -> list[Sketch]:
    """Synthetic handwritten capital letters (``classes`` from :data:`LETTERS`), ``n_per_class`` each.

    Same generator and conventions as :func:`digits`; keys ``"letters:%06d"``,
    classes interleaved in the given order.
    """
    return _generate("letters", list(classes), int(n_per_class), seed)


def digits_wide(n_per_class: int = 1000, seed: int = 0) -> list[Sketch]:
    """``digits(n_per_class, seed, style="wide")``: the widened digits (dataset ``digits-wide``)."""
    return digits(n_per_class, seed, style="wide")


__all__ = ["DIGITS", "LETTERS", "STYLES", "digits", "digits_wide", "letters"]
