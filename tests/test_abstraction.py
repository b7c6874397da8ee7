"""The abstraction effect of chapter 11 (paper 5.5): decoding at lower frequencies."""
import numpy as np
import pytest
import torch

from sketchode.book.ch11_abstraction import decode_at, detail, ink_length, sweep
from sketchode.data import Sketch, load
from sketchode.book.ch10_latent import encode_sketches
from sketchode.models.full_sequence import SketchODE

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model_and_codes():
    torch.manual_seed(0)
    m = SketchODE(d=8, l=6, G=20, n_hidden=1)
    return m, encode_sketches(m, load("digits", "test")[:4])


def test_scale_one_is_the_model_and_the_model_is_restored(model_and_codes):
    m, z = model_and_codes
    before = {k: v.clone() for k, v in m.state_dict().items()}
    xy1, _ = decode_at(m, z, 1.0, raw=True)
    xy2, _ = decode_at(m, z, 0.3, raw=True)
    xy1b, _ = decode_at(m, z, 1.0, raw=True)
    assert np.allclose(xy1, xy1b) and not np.allclose(xy1, xy2)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def test_cos_field_tends_to_one_curve_as_w_goes_to_zero(model_and_codes):
    """cos(w x) -> 1: the acceleration no longer depends on z, so all codes decode alike."""
    m, z = model_and_codes
    spread = []
    for s in (1.0, 0.1, 0.001):
        xy, _ = decode_at(m, z, s, raw=True)
        spread.append(np.abs(xy - xy.mean(0)).max())
    # what is left at tiny w is the hidden initial state's own (z-dependent) drift, not F's detail
    assert spread[2] < spread[1] <= spread[0] * 1.5


def test_sweep_shapes_and_bad_scale(model_and_codes):
    m, z = model_and_codes
    r = sweep(m, z, scales=(1.0, 0.5), G=30)
    assert r["scales"] == [1.0, 0.5] and len(r["sketches"]) == 2 and len(r["sketches"][0]) == 4
    assert r["detail"][0].shape == (4,) and r["ink"][1].shape == (4,) and r["strokes"][0].dtype.kind == "i"
    with pytest.raises(ValueError, match="scale must be > 0"):
        decode_at(m, z, 0.0)


def test_detail_and_ink_length_measure_what_they_say():
    u = np.linspace(0, 1, 50)
    line = Sketch([np.column_stack([u, 0 * u, u])])
    wiggle = Sketch([np.column_stack([u, 0.05 * np.sin(40 * u), u])])
    assert detail(line) == pytest.approx(0.0, abs=1e-9) and detail(wiggle) > 0.3
    assert ink_length(line) == pytest.approx(1.0)
    two = Sketch([np.column_stack([u, 0 * u, u]), np.column_stack([u, 0 * u + 1, u + 2])])
    assert ink_length(two) == pytest.approx(2.0)  # the jump between strokes is not ink
    assert np.isnan(detail(Sketch([np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 1.0]])])))
