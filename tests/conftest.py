import os
from pathlib import Path

# The test suite (and nbval's kernels, which inherit this environment) runs the
# book under the small budget; set before anything imports sketchode.settings.
os.environ.setdefault("SKETCHODE_FAST", "1")
# ... and never downloads: a missing dataset skips (tests) or is named in a note (chapters).
os.environ.setdefault("SKETCHODE_DOWNLOAD", "0")

import numpy as np
import pytest

from sketchode.data import Sketch

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def make_sketch(n_strokes=3, n=20, seed=0, timed=True, label="x", key=None):
    """A random smooth multi-stroke sketch for tests."""
    rng = np.random.default_rng(seed)
    strokes, t0 = [], 0.0
    for k in range(n_strokes):
        u = np.linspace(0, 1, n)
        c = rng.normal(size=2) * 3
        xy = c + np.column_stack([np.cos(3 * u + k), np.sin(2 * u + k)]) * rng.uniform(0.5, 2)
        t = t0 + np.cumsum(rng.uniform(5, 15, size=n))
        t0 = t[-1] + rng.uniform(50, 200)
        strokes.append(np.column_stack([xy, t]))
    return Sketch(strokes, label=label, timed=timed, key=key or f"test:{seed}")


@pytest.fixture
def sketch():
    return make_sketch()


@pytest.fixture(scope="session")
def data_root():
    """The real-data root from SKETCHODE_DATA; skips outside CI when absent, fails in CI."""
    root = os.environ.get("SKETCHODE_DATA")
    # a data root that holds none of the real datasets (an empty one, a fresh cache) counts as absent
    known = ("sketchrnn", "quickdraw-raw", "omniglot-strokes", "pendigits")
    if root and Path(root).is_dir() and any((Path(root) / k).exists() for k in known):
        return Path(root)
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but SKETCHODE_DATA does not point at the shared data folder")
    pytest.skip("real datasets not available: set SKETCHODE_DATA to the data root (see README)")


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (small tensors: as fast, and immune to spin-waits on a busy 2-core box)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module", params=["ode", "rnn"])
def tiny_autoencoder(request):
    """A tiny full-sequence autoencoder of each kind (d=8, l=6, G=20, seeded): SketchODE, then the LSTM baseline."""
    import torch

    from sketchode.models.lstm import RNNAutoencoder
    from sketchode.models.full_sequence import SketchODE

    torch.manual_seed(0)
    if request.param == "ode":
        return SketchODE(d=8, l=6, G=20, n_hidden=1)
    return RNNAutoencoder(d=8, l=6, G=20)


@pytest.fixture
def cpp_loops():
    """The C++ extension (loaded, or built into the cache, at the first test that needs it), else a skip.

    Never at collection: a module-level check would compile during ``pytest --collect-only``.
    """
    from sketchode.numerics.fused import cpp_extension

    ext = cpp_extension()
    if ext is None:
        pytest.skip(f"C++ loops not built: {cpp_extension.error}")
    return ext
