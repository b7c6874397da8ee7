"""Scores that a constant drawing cannot pass (chapter 9): retrieval_top1 and chamfer_random."""

import numpy as np
import pytest

from sketchode.data import load
from sketchode.data.sketch import prepare
from sketchode.evaluation.scores import GALLERY, chamfer, chamfer_matrix, chamfer_random, retrieval_top1


@pytest.fixture(scope="module")
def digits():
    return prepare(load("digits", "test")[:400])


def test_chamfer_matrix_agrees_with_pairwise_chamfer(digits):
    a, b = digits[:6], digits[6:15]
    m = chamfer_matrix(a, b, n=64)
    assert m.shape == (6, 9)
    want = np.array([[chamfer([x], [y], n=64)[0] for y in b] for x in a])
    np.testing.assert_allclose(m, want, atol=1e-4)


def test_a_constant_drawing_scores_about_one_in_a_hundred(digits):
    rates = [retrieval_top1(digits, [digits[k]] * len(digits), seed=s) for k, s in ((0, 0), (5, 1), (17, 2))]
    assert all(r <= 0.05 for r in rates), rates  # expectation 1 / (GALLERY + 1) ~ 0.0099
    assert np.mean(rates) < 0.03


def test_perfect_reconstructions_score_one_and_shuffled_ones_near_zero(digits):
    assert retrieval_top1(digits, digits) == 1.0
    shuffled = digits[1:] + digits[:1]  # every reconstruction is another drawing
    assert retrieval_top1(digits, shuffled) < 0.1


def test_retrieval_gallery_is_fixed_by_the_seed(digits):
    noisy = [s.with_points(s.points + np.r_[0.05, -0.03, 0.0]) for s in digits]
    assert retrieval_top1(digits, noisy, seed=3) == retrieval_top1(digits, noisy, seed=3)
    assert GALLERY == 100


def test_chamfer_random_never_pairs_a_drawing_with_itself():
    two = prepare(load("digits", "test")[:2])  # with two drawings the only partner is the other one
    for seed in range(4):
        assert chamfer_random(two, seed=seed) == pytest.approx(float(chamfer(two[:1], two[1:])[0]))
    d = prepare(load("digits", "test")[:200])
    r = chamfer_random(d)
    assert r > 3 * float(chamfer(d, d).mean() + 0.01)  # other drawings are far; the drawing itself is at 0
    with pytest.raises(ValueError, match="at least 2"):
        chamfer_random(d[:1])


def test_retrieval_checks_its_input(digits):
    with pytest.raises(ValueError, match="3 originals against 2"):
        retrieval_top1(digits[:3], digits[:2])
