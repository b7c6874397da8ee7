"""Continuous data augmentation with Perlin noise (paper section 4.6; chapter 6).

Discrete-time sketch models augment a drawing by adding independent Gaussian
noise to each point (Ha & Eck, 2018; :func:`gaussian_jitter` here).  Such noise
is white: it makes a continuous curve rough.  Section 4.6 of the paper instead
adds a *continuous* random function of the drawing itself,

.. math::

    \\tilde s(t) = s(t) + \\sigma\\,(p(t) - p_{CG}),\\qquad
    p(t) = \\begin{bmatrix}\\mathrm{Perlin2D}(s(t) + e_x + e)\\\\
                          \\mathrm{Perlin2D}(s(t) + e_y + e)\\end{bmatrix},\\qquad
    p_{CG} = \\frac{1}{t_1 - t_0}\\int_{t_0}^{t_1} p(t)\\,dt,

where ``Perlin2D`` is two-dimensional (improved) Perlin noise, ``e_x != e_y``
are fixed coordinate seeds (so the x and y displacements are different noise
fields), ``e`` is a per-sample seed and ``sigma`` the strength.  Because the
noise is evaluated *at the drawing's position*, the displacement is a smooth
warp of the plane: nearby points move together, the curve stays as smooth as
it was, and it can be evaluated at any sampling density.  Subtracting the
centre of gravity ``p_CG`` makes the warp zero-mean along the drawing, so it
changes the shape, not the position.

Implementation notes
--------------------
* :func:`perlin2d` is a vectorised numpy port of the algorithm computed by
  ``noise.pnoise2(x, y, octaves=1, base=base)`` from the ``noise`` package (Ken
  Perlin's 2002 "improved" noise: quintic fade ``6u^5 - 15u^4 + 10u^3``, the
  classic 256-entry permutation table, and the first two components of the
  package's 16 three-dimensional gradients).  It agrees with ``noise.pnoise2``
  up to the float32 rounding of the C code (a maximum difference of about
  1.3e-6) for ``base`` 0 and 1; the package reads past the end of its table
  for larger ``base`` (undefined behaviour in C), so this port wraps the table
  index instead (well defined, periodic).  It runs in
  float64, so large seed offsets do not lose the precision that the float32 C
  code loses.
* The authors' code called ``pnoise2`` in a per-point Python loop inside the
  data loader; here one call evaluates every point of a drawing, both
  coordinates at once.
* **Time for the centre of gravity.**  ``p_CG`` is a time average.  Time is the
  drawing's own clock as :meth:`Sketch.retime` would use it: the real
  timestamps (made strictly increasing) when ``sketch.timed``, otherwise
  arc-length time along the whole path (pen-up travel counts as distance).
  The integral runs over the *ink* only (trapezoid rule within each stroke,
  divided by the total ink duration); the pen-up gaps carry no ink to move.
  A rescaling of time (``retime(T)`` for any ``T``) does not change the
  result.  When no stroke has any duration (only dots) the plain mean is used.
  ``center="stroke"`` subtracts each stroke's own time-average instead (what
  the authors' code does).
* **Apply augmentation to the training split only.**  :func:`augment_copies`
  keeps each original's ``key`` on its copies, so a split that hashes the key
  puts every copy of a drawing on the same side as its original; augmenting
  after splitting, on the training part, keeps validation and test data clean
  (the authors' code augmented validation data too and let copies of one
  drawing fall on both sides of the split).
* **Analysis and figures (chapter 6).**  :func:`roughness` (how rough a
  drawing is at its sampling scale), :func:`displacement_rms`,
  :func:`warp_field` (the displacement at any position of the plane),
  :func:`center_of_gravity`, and the figures :func:`plot_perlin_field`,
  :func:`plot_warp`, :func:`plot_augmentations` (figure 4, right) and
  :func:`plot_displacement`.
* **Seeding.**  Every random quantity comes from a
  :class:`numpy.random.SeedSequence` built from the caller's ``seed`` (and, in
  :func:`augment_copies`, a stable hash of the drawing's key or index and the
  copy number), never from global random state.
"""

from __future__ import annotations

import zlib
from dataclasses import replace
from typing import Callable, Iterable, Sequence

import numpy as np

from sketchode.data.sketch import Sketch

# ------------------------------------------------------------------ tables
# Ken Perlin's reference permutation of 0..255 (as in the ``noise`` package's
# ``_noise.h``), doubled so that ``PERM[A + j]`` needs no wrap for base 0.
_P = np.array(
    [151, 160, 137, 91, 90, 15, 131, 13, 201, 95, 96, 53, 194, 233, 7, 225, 140, 36, 103, 30, 69, 142,
     8, 99, 37, 240, 21, 10, 23, 190, 6, 148, 247, 120, 234, 75, 0, 26, 197, 62, 94, 252, 219, 203, 117,
     35, 11, 32, 57, 177, 33, 88, 237, 149, 56, 87, 174, 20, 125, 136, 171, 168, 68, 175, 74, 165, 71,
     134, 139, 48, 27, 166, 77, 146, 158, 231, 83, 111, 229, 122, 60, 211, 133, 230, 220, 105, 92, 41,
     55, 46, 245, 40, 244, 102, 143, 54, 65, 25, 63, 161, 1, 216, 80, 73, 209, 76, 132, 187, 208, 89,
     18, 169, 200, 196, 135, 130, 116, 188, 159, 86, 164, 100, 109, 198, 173, 186, 3, 64, 52, 217, 226,
     250, 124, 123, 5, 202, 38, 147, 118, 126, 255, 82, 85, 212, 207, 206, 59, 227, 47, 16, 58, 17, 182,
     189, 28, 42, 223, 183, 170, 213, 119, 248, 152, 2, 44, 154, 163, 70, 221, 153, 101, 155, 167, 43,
     172, 9, 129, 22, 39, 253, 19, 98, 108, 110, 79, 113, 224, 232, 178, 185, 112, 104, 218, 246, 97,
     228, 251, 34, 242, 193, 238, 210, 144, 12, 191, 179, 162, 241, 81, 51, 145, 235, 249, 14, 239, 107,
     49, 192, 214, 31, 181, 199, 106, 157, 184, 84, 204, 176, 115, 121, 50, 45, 127, 4, 150, 254, 138,
     236, 205, 93, 222, 114, 67, 29, 24, 72, 243, 141, 128, 195, 78, 66, 215, 61, 156, 180],
    dtype=np.intp,
)
_PERM = np.concatenate([_P, _P])
_PERM.setflags(write=False)

# x and y components of the package's 16 gradient vectors (``GRAD3[h & 15]``).
_GRAD = np.array(
    [[1, 1], [-1, 1], [1, -1], [-1, -1],
     [1, 0], [-1, 0], [1, 0], [-1, 0],
     [0, 1], [0, -1], [0, 1], [0, -1],
     [1, 0], [-1, 0], [0, -1], [0, 1]],
    dtype=np.float64,
)
_GX = np.ascontiguousarray(_GRAD[:, 0])
_GY = np.ascontiguousarray(_GRAD[:, 1])

#: Coordinate seeds ``e_x``, ``e_y`` of section 4.6 (the authors' code shifts by +5 and -5).
COORD_SEEDS = (5.0, -5.0)
#: Range of the per-sample seed ``e``: uniform over one period of the noise in each axis.
SAMPLE_SEED_RANGE = 256.0


def _fade(u: np.ndarray) -> np.ndarray:
    return u * u * u * (u * (u * 6.0 - 15.0) + 10.0)


def perlin2d(x, y, base: int = 0) -> np.ndarray:
    """Two-dimensional improved Perlin noise at arrays of points (paper 4.6).

    A vectorised numpy implementation of what ``noise.pnoise2(x, y, octaves=1,
    base=base)`` computes (same permutation table, gradient set, fade curve and
    lattice wrapping; period 256 in each axis).  ``x`` and ``y`` broadcast
    against each other; the result has their broadcast shape, values in about
    ``[-1, 1]``, zero at every integer lattice point, and is C1-smooth.

    Differences from the C code: arithmetic is float64 (the package converts
    its inputs to float32), and for ``base >= 2`` the table index wraps (the C
    code reads past its 512-entry table).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    fx0 = np.floor(x)
    fy0 = np.floor(y)
    base = int(base)
    i = fx0.astype(np.intp) & 255
    j = fy0.astype(np.intp) & 255
    ii = (i + 1) & 255
    jj = (j + 1) & 255
    u = x - fx0
    v = y - fy0
    P = _PERM
    if base:
        i, j, ii, jj = i + base, j + base, ii + base, jj + base
        A = P[i % 512]
        B = P[ii % 512]
        AA, AB = P[(A + j) % 512], P[(A + jj) % 512]
        BA, BB = P[(B + j) % 512], P[(B + jj) % 512]
    else:
        A = P[i]
        B = P[ii]
        AA, AB = P[A + j], P[A + jj]
        BA, BB = P[B + j], P[B + jj]
    hAA, hBA, hAB, hBB = P[AA] & 15, P[BA] & 15, P[AB] & 15, P[BB] & 15
    u1 = u - 1.0
    v1 = v - 1.0
    gAA = _GX[hAA] * u + _GY[hAA] * v
    gBA = _GX[hBA] * u1 + _GY[hBA] * v
    gAB = _GX[hAB] * u + _GY[hAB] * v1
    gBB = _GX[hBB] * u1 + _GY[hBB] * v1
    fu = _fade(u)
    fv = _fade(v)
    lo = gAA + fu * (gBA - gAA)
    hi = gAB + fu * (gBB - gAB)
    return lo + fv * (hi - lo)


#: An upper bound on the gradient norm of :func:`perlin2d` (the largest
#: partial derivative is below 3; the measured maximum of the norm
#: is about 2.36).  Used by tests as a Lipschitz constant.
PERLIN_LIPSCHITZ = 3.0


# ---------------------------------------------------------------- seeding
def _key_word(key, index: int) -> int:
    """A stable 32-bit word for a drawing: CRC32 of its key, else its index."""
    if key is None:
        return int(index) & 0xFFFFFFFF
    return zlib.crc32(str(key).encode("utf-8")) & 0xFFFFFFFF


def _seed_sequence(seed, *words: int) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        if not words:
            return seed
        return np.random.SeedSequence(list(seed.generate_state(4)) + [int(w) for w in words])
    return np.random.SeedSequence([int(seed)] + [int(w) for w in words])


def _rng(seed, *words: int) -> np.random.Generator:
    return np.random.default_rng(_seed_sequence(seed, *words))


def sample_seed(seed=0) -> np.ndarray:
    """The per-sample seed ``e`` of section 4.6 for ``seed``: a 2-vector uniform in ``[0, 256)^2``.

    Different seeds give independent offsets into the noise, hence (almost
    surely) unrelated warps; the same seed always gives the same offset.
    """
    return _rng(seed).uniform(0.0, SAMPLE_SEED_RANGE, size=2)


# ----------------------------------------------------------- time weights
def ink_time(sketch: Sketch) -> np.ndarray:
    """``(N,)`` strictly increasing time of every ink point (used for ``p_CG``).

    Real timestamps when ``sketch.timed``, else arc length along the whole path
    (pen-up travel counts), exactly as :meth:`Sketch.retime` before rescaling.
    """
    return sketch.ink_time()


def time_weights(sketch: Sketch, per_stroke: bool = False) -> np.ndarray:
    """Trapezoid weights of the time integral over the ink (paper 4.6).

    Returns ``(N,)`` non-negative weights ``w`` with ``sum(w * f) / sum(w)`` the
    time average of ``f`` over the pen-down time of the drawing: the interval
    between two consecutive points of one stroke contributes half its duration
    to each end; pen-up gaps contribute nothing.  With ``per_stroke`` the
    weights are normalised to sum to 1 within each stroke instead of over the
    drawing.  Points of strokes without duration (dots) get weight 0 unless no
    stroke has any duration, in which case all weights are equal.
    """
    t = ink_time(sketch)
    sid = sketch.stroke_index
    dt = np.diff(t)
    same = sid[1:] == sid[:-1]
    dt = np.where(same, dt, 0.0)
    w = np.zeros(len(t))
    w[:-1] += 0.5 * dt
    w[1:] += 0.5 * dt
    if not per_stroke:
        total = w.sum()
        return w / total if total > 0 else np.full(len(t), 1.0 / len(t))
    sums = np.bincount(sid, weights=w, minlength=sketch.n_strokes)
    counts = np.bincount(sid, minlength=sketch.n_strokes)
    zero = sums[sid] <= 0
    return np.where(zero, 1.0 / counts[sid], w / np.where(zero, 1.0, sums[sid]))


# ------------------------------------------------------------------ Perlin
def perlin_field(xy: np.ndarray, offset=(0.0, 0.0), frequency: float = 1.0) -> np.ndarray:
    """``p`` of section 4.6 at positions ``xy`` (``(..., 2)``): ``(..., 2)``.

    ``p_x = Perlin2D(f * xy + e_x + e)``, ``p_y = Perlin2D(f * xy + e_y + e)`` with
    ``e = offset`` (a scalar or 2-vector added to both coordinates) and
    ``f = frequency`` (lattice cells per unit of drawing; 1 suits drawings
    normalised into the unit disc).  One vectorised call for both components.
    """
    xy = np.asarray(xy, dtype=np.float64)
    q = frequency * xy + np.asarray(offset, dtype=np.float64)
    ex, ey = COORD_SEEDS
    qq = np.stack([q + ex, q + ey])  # (2, ..., 2)
    val = perlin2d(qq[..., 0], qq[..., 1])
    return np.moveaxis(val, 0, -1)


def perlin_displacement(
    sketch: Sketch,
    sigma: float = 0.15,
    seed=0,
    frequency: float = 1.0,
    center: str = "drawing",
) -> np.ndarray:
    """The displacement ``sigma * (p(t) - p_CG)`` of every point: ``(N, 2)`` (paper 4.6).

    ``center="drawing"`` (default, the paper's formula) subtracts the time
    average over the whole drawing's ink; ``"stroke"`` subtracts each stroke's
    own time average (the authors' code); ``"none"`` subtracts nothing.  The
    result is exactly linear in ``sigma``.
    """
    xy = sketch.points[:, :2]
    p = perlin_field(xy, sample_seed(seed), frequency)
    if center == "drawing":
        w = time_weights(sketch)
        p = p - w @ p
    elif center == "stroke":
        w = time_weights(sketch, per_stroke=True)
        sid = sketch.stroke_index
        cg = np.stack([np.bincount(sid, weights=w * p[:, k], minlength=sketch.n_strokes) for k in (0, 1)], axis=1)
        p = p - cg[sid]
    elif center != "none":
        raise ValueError(f"perlin_displacement: center must be 'drawing', 'stroke' or 'none', got {center!r}")
    return float(sigma) * p


def perlin(
    sketch: Sketch,
    sigma: float = 0.15,
    seed=0,
    frequency: float = 1.0,
    center: str = "drawing",
) -> Sketch:
    """Continuous Perlin-noise augmentation of a drawing (paper section 4.6).

    Returns ``s(t) + sigma * (p(t) - p_CG)``: every point moves by a smooth,
    zero-time-mean random warp (see :func:`perlin_displacement` and the module
    notes for the time used by ``p_CG``).  ``sigma`` is in the drawing's units
    (0.15 suits drawings normalised into the unit disc; the authors' default is
    0.2); ``frequency`` scales positions before the noise is looked up (higher
    is wigglier); ``seed`` (an int or :class:`numpy.random.SeedSequence`) fixes
    the per-sample seed ``e``.  Time, stroke structure, label, key and meta
    are unchanged.
    """
    d = perlin_displacement(sketch, sigma, seed, frequency, center)
    pts = sketch.points.copy()
    pts[:, :2] += d
    return sketch.with_points(pts)


def gaussian_jitter(sketch: Sketch, sigma: float = 0.01, seed=0) -> Sketch:
    """Independent ``N(0, sigma^2)`` noise on each coordinate of each point.

    The discrete-time baseline that section 4.6 contrasts with (Ha & Eck,
    2018): white noise, so the curve becomes rough at the sampling scale.
    Time and structure unchanged.
    """
    pts = sketch.points.copy()
    pts[:, :2] += _rng(seed).normal(0.0, float(sigma), size=(len(pts), 2))
    return sketch.with_points(pts)


_KINDS: dict[str, tuple[Callable, float]] = {
    "perlin": (perlin, 0.15),
    "gaussian": (gaussian_jitter, 0.01),
}


def augment_copies(
    sketches: Iterable[Sketch],
    n_copies: int,
    sigma: float | Sequence[float] | None = None,
    seed: int = 0,
    kind: str = "perlin",
    include_original: bool = False,
    **kwargs,
) -> list[Sketch]:
    """``n_copies`` augmented copies of every drawing (paper 4.6 and 5.1).

    **Apply to the training split only**, after splitting: each copy keeps its
    original's ``key`` (and label), so key-hashed splits can never put copies of
    one drawing on both sides.  Copies carry ``meta["augmented"] = i`` for
    ``i = 1 .. n_copies`` (the original, kept first when ``include_original``,
    is returned unchanged).

    ``sigma`` is one strength for every copy, or a sequence of ``n_copies``
    strengths (the authors grew VectorMNIST with ``sigma_i = 0.2 i / 25``);
    ``None`` uses the kind's default.  ``kind`` is ``"perlin"`` (:func:`perlin`)
    or ``"gaussian"`` (:func:`gaussian_jitter`); extra keyword arguments go to
    it.  Copy ``i`` of a drawing is seeded by ``SeedSequence([seed,
    crc32(key), i])`` (the list index replaces the key when it is ``None``), so
    the result does not depend on the order or company of the drawings.
    """
    if kind not in _KINDS:
        raise ValueError(f"augment_copies: kind must be one of {sorted(_KINDS)}, got {kind!r}")
    fn, default_sigma = _KINDS[kind]
    n_copies = int(n_copies)
    if sigma is None:
        sigmas = [default_sigma] * n_copies
    elif np.ndim(sigma) == 0:
        sigmas = [float(sigma)] * n_copies
    else:
        sigmas = [float(s) for s in sigma]
        if len(sigmas) != n_copies:
            raise ValueError(f"augment_copies: got {len(sigmas)} sigmas for {n_copies} copies")
    out: list[Sketch] = []
    for idx, sk in enumerate(sketches):
        if include_original:
            out.append(sk)
        word = _key_word(sk.key, idx)
        for i in range(1, n_copies + 1):
            new = fn(sk, sigma=sigmas[i - 1], seed=_seed_sequence(seed, word, i), **kwargs)
            out.append(replace(new, meta={**sk.meta, "augmented": i}))
    return out


# ------------------------------------------------ analysis and figures (chapter 6)
def _check_sketch(sketch, where: str) -> Sketch:
    if not isinstance(sketch, Sketch):
        raise TypeError(f"{where}: expected a Sketch, got {type(sketch).__name__}")
    return sketch


def roughness(sketch: Sketch) -> float:
    """How rough a drawing is at its sampling scale (paper 4.6; chapter 6).

    The ratio of the root-mean-square second difference to the root-mean-square
    first difference of the pen positions, both taken inside strokes::

        sqrt(mean ||x[i+1] - 2 x[i] + x[i-1]||^2) / sqrt(mean ||x[i+1] - x[i]||^2)

    Dimensionless (invariant to translation, rotation and scale).  For a smooth
    curve it is about the turning of the pen per sample (exactly
    ``2 sin(pi / n)`` on a regular ``n``-gon, 0 on a straight line sampled at
    equal steps); white noise of standard deviation ``s`` per coordinate adds
    about ``12 s^2`` to the mean squared second difference and ``4 s^2`` to the
    first, so Gaussian jitter (:func:`gaussian_jitter`) inflates it while a
    smooth warp (:func:`perlin`) leaves it nearly unchanged.  Needs a stroke
    of at least three points and some movement.
    """
    sk = _check_sketch(sketch, "roughness")
    xy = sk.points[:, :2]
    sid = sk.stroke_index
    d1 = np.diff(xy, axis=0)
    in1 = sid[1:] == sid[:-1]
    d2 = xy[2:] - 2.0 * xy[1:-1] + xy[:-2]
    in2 = in1[1:] & in1[:-1]
    if not in2.any():
        raise ValueError("roughness: needs a stroke with at least 3 points")
    m1 = np.mean(np.sum(d1[in1] ** 2, axis=1))
    if m1 <= 0:
        raise ValueError("roughness: the pen never moves (all steps are zero)")
    m2 = np.mean(np.sum(d2[in2] ** 2, axis=1))
    return float(np.sqrt(m2 / m1))


def displacement_rms(original: Sketch, augmented: Sketch) -> float:
    """Root-mean-square distance ``sqrt(mean ||a_i - o_i||^2)`` between matching points (chapter 6).

    The size of an augmentation, used to compare Perlin noise and Gaussian
    jitter at the same displacement magnitude (section 4.6).  Both drawings
    must have the same stroke structure (as :func:`perlin` and
    :func:`gaussian_jitter` keep it).  Independent jitter of standard
    deviation ``s`` per coordinate has an expected squared displacement of
    ``2 s^2``, so ``displacement_rms(o, a) / sqrt(2)`` is the matched ``s``.
    """
    o = _check_sketch(original, "displacement_rms")
    a = _check_sketch(augmented, "displacement_rms")
    if [len(s) for s in o.strokes] != [len(s) for s in a.strokes]:
        raise ValueError("displacement_rms: the drawings differ in stroke structure")
    d = a.points[:, :2] - o.points[:, :2]
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1))))


def warp_field(
    xy,
    sketch: Sketch,
    sigma: float = 0.15,
    seed=0,
    frequency: float = 1.0,
    center: str = "drawing",
) -> np.ndarray:
    """The displacement ``sigma * (p(x) - p_CG)`` at any positions ``xy`` (``(..., 2)``) (paper 4.6; chapter 6).

    The augmentation of :func:`perlin` is a warp of the whole plane: the noise
    is looked up at a *position*, so every point of the plane has a
    displacement, and a drawing's points take the ones at their positions.
    ``p_CG`` is the time average of ``p`` over ``sketch``'s ink, so
    ``warp_field(sketch.points[:, :2], sketch, ...)`` equals
    :func:`perlin_displacement` of the same arguments.  ``center`` is
    ``"drawing"`` or ``"none"``; ``"stroke"`` has one centre per stroke, not
    one warp of the plane, and is refused.
    """
    sk = _check_sketch(sketch, "warp_field")
    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim < 1 or xy.shape[-1] != 2:
        raise ValueError(f"warp_field: positions must have a last axis of size 2, got shape {xy.shape}")
    off = sample_seed(seed)
    p = perlin_field(xy, off, frequency)
    if center == "drawing":
        cg = time_weights(sk) @ perlin_field(sk.points[:, :2], off, frequency)
    elif center == "none":
        cg = np.zeros(2)
    elif center == "stroke":
        raise ValueError("warp_field: center='stroke' subtracts one centre per stroke, so it is no single warp of the plane")
    else:
        raise ValueError(f"warp_field: center must be 'drawing' or 'none', got {center!r}")
    return float(sigma) * (p - cg)


def center_of_gravity(sketch: Sketch, weights_from: Sketch | None = None) -> np.ndarray:
    """The time-weighted centre of the ink, ``sum_i w_i x_i`` with :func:`time_weights` (paper 4.6; chapter 6).

    ``weights_from`` takes the weights from another drawing of the same
    structure (e.g. the original of an augmented copy: for untimed drawings
    arc-length time, hence the weights, change when the drawing is warped).
    """
    sk = _check_sketch(sketch, "center_of_gravity")
    ref = sk if weights_from is None else _check_sketch(weights_from, "center_of_gravity")
    if ref.n_points != sk.n_points:
        raise ValueError("center_of_gravity: weights_from has a different number of points")
    return time_weights(ref) @ sk.points[:, :2]


__all__ = [
    "COORD_SEEDS",
    "PERLIN_LIPSCHITZ",
    "perlin2d",
    "perlin_field",
    "perlin_displacement",
    "perlin",
    "gaussian_jitter",
    "augment_copies",
    "sample_seed",
    "ink_time",
    "time_weights",
    "roughness",
    "displacement_rms",
    "warp_field",
    "center_of_gravity",
]
