"""Chapter 9's reconstruction table (paper 5.2, table 1): configs, metrics, recognition sets and the grid."""
import json

import numpy as np
import pooch
import pytest
import torch

import sketchode.book.ch09_reconstruction as ex
from sketchode.cli.main import main
from sketchode.training.configs import build_model, get_config
from sketchode.data import load
from sketchode.data.sketch import Sketch, prepare
from sketchode.evaluation.scores import OTHER, chamfer, evaluate_checkpoint, ink_points, recognition_set, recognizer_name
from sketchode.book.ch09_reconstruction import RECONSTRUCTION, Run, reconstruction_runs, run_grid

pytestmark = pytest.mark.usefixtures("one_thread")


def _sk(*strokes, label=None, key=None):
    return Sketch([np.column_stack([np.asarray(s, float), np.arange(len(s))]) for s in strokes], label=label, key=key)


# ------------------------------------------------------------------ metrics
def test_ink_points_skip_pen_up_travel_and_are_even():
    # two unit strokes far apart: every sample lies on ink, half on each stroke
    s = _sk([[0, 0], [1, 0]], [[0, 5], [1, 5]])
    p = ink_points(s, 100)
    assert p.shape == (100, 2)
    assert set(np.round(p[:, 1], 9)) == {0.0, 5.0}  # none on the jump from (1, 0) to (0, 5)
    assert (p[:, 1] == 0).sum() == 50
    assert np.allclose(np.diff(p[:50, 0]), 1 / 49.5, atol=0.011)  # evenly spread along the ink
    dot = _sk([[0.3, 0.4]])  # no ink at all: the point itself
    assert np.allclose(ink_points(dot, 4), [[0.3, 0.4]] * 4)


def test_chamfer_is_zero_for_the_same_drawing_symmetric_and_grows_with_offset():
    a = _sk([[0, 0], [1, 0], [1, 1]], [[2, 2], [3, 3]])
    resampled = _sk([[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]], [[2, 2], [2.5, 2.5], [3, 3]])
    assert chamfer([a], [resampled])[0] < 0.02  # same ink, different points
    b = a.with_points(a.points + [0.1, 0, 0])
    c = a.with_points(a.points + [0.3, 0, 0])
    d_ab, d_ac = chamfer([a, a], [b, c])
    assert chamfer([b], [a])[0] == pytest.approx(d_ab)
    assert 0 < d_ab < d_ac <= 0.3 + 1e-9
    with pytest.raises(ValueError, match="2 drawings against 1"):
        chamfer([a, a], [b])
    with pytest.raises(ValueError, match="no drawings"):
        chamfer([], [])


def test_recognizer_names_are_file_stems():
    assert recognizer_name("sheep") == "recognizer-sheep"
    assert recognizer_name("quickdraw-raw/face,fish,flower") == "recognizer-quickdraw-raw-face-fish-flower"


def test_evaluate_checkpoint_reports_chamfer(tiny_autoencoder):
    res = evaluate_checkpoint(tiny_autoencoder, "digits", limit=8, recognizer=None)
    assert res["n"] == 8 and 0 < res["chamfer"] < 2


# ------------------------------------------------------------------ configs
def test_chapter9_configs_pair_a_sketchode_with_a_same_size_lstm():
    for ds, (ode, rnn, n_ode, n_rnn) in RECONSTRUCTION.items():
        a, b = get_config(ode), get_config(rnn)
        assert a.dataset == b.dataset
        assert (a.kwargs["d"], a.kwargs["l"]) == (b.kwargs["d"], b.kwargs["l"])
        assert b.model.endswith("RNNAutoencoder") and b.train["lr"] == 1e-4 and a.train["lr"] == 3e-3
        assert n_rnn > n_ode  # the LSTM's step is cheaper: equal wall time means more steps
    assert get_config("omniglot").dataset == "omniglot-strokes"
    assert get_config("doodles").dataset == "quickdraw-raw/face,fish,flower"


def test_multistroke_configs_start_at_zero_acceleration():
    # regression: the default initialisation made sheep's point loss jump 0.31 -> 10.1 after one step
    for name in ("sheep", "quickdraw", "doodles", "didi"):
        assert get_config(name).kwargs["zero_last"] is True
    m = build_model("sheep", d=8, l=4)
    last = [p for n, p in m.decoder.named_parameters() if n.endswith("weight")][-1]
    assert torch.count_nonzero(last) == 0


# --------------------------------------------------------------------- grid
def test_reconstruction_runs_pair_models_per_dataset_and_seed():
    runs = reconstruction_runs()
    assert len(runs) == 3 * 3 * 2 and len({r.name for r in runs}) == len(runs)
    sheep = [r for r in runs if r.tags["dataset"] == "sheep"]
    assert {(r.config, r.steps) for r in sheep} == {("sheep", 200), ("sheep-rnn", 1000)}
    assert {r.seed for r in sheep} == {0, 1, 2}
    short = reconstruction_runs(("digits",), seeds=(5,), ode_steps=3, rnn_steps=7)
    assert [(r.name, r.steps) for r in short] == [("digits-sketchode-s5", 3), ("digits-rnn-s5", 7)]
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        reconstruction_runs(("mnist",))


def test_run_grid_scores_recognition_and_keeps_checkpoints(tmp_path, monkeypatch):
    real = ex.run_one
    monkeypatch.setattr(ex, "run_one", lambda run, **kw: real(run, test_limit=16, **{k: v for k, v in kw.items()
                                                                                       if k != "test_limit"}))
    runs = [Run("a", "tiny", 2, tags={"model": "SketchODE"})]
    data = run_grid(runs, tmp_path / "r.json", log=None, recognition=True, checkpoint_dir=tmp_path / "ck")
    rec = data["runs"][0]["recognition"]
    assert rec["n"] == 16 and rec["accuracy_data"] == 1.0 and 0 <= rec["accuracy"] <= 1 and rec["chamfer"] > 0
    assert rec["loss"] == pytest.approx(data["runs"][0]["test"]["total"], rel=1e-5)  # one definition of the loss
    assert (tmp_path / "ck" / "a.pt").exists()
    # the kept checkpoint evaluates to the recorded numbers (what `python -m sketchode evaluate` prints)
    from sketchode.training.checkpoint import load_model

    again = evaluate_checkpoint(load_model(tmp_path / "ck" / "a.pt"), "digits", limit=16)
    assert again["loss"] == pytest.approx(rec["loss"], rel=1e-5) and again["accuracy"] == rec["accuracy"]


def test_cli_experiment_reconstruction(tmp_path, capsys, monkeypatch):
    real = ex.run_one
    monkeypatch.setattr(ex, "run_one", lambda run, **kw: real(run, test_limit=8, **{k: v for k, v in kw.items()
                                                                                      if k != "test_limit"}))
    monkeypatch.setitem(ex.RECONSTRUCTION, "digits", ("tiny", "digits-rnn", 1, 1))
    out = tmp_path / "r.json"
    assert main(["experiment", "reconstruction", "--datasets", "digits", "--seeds", "0", "--out", str(out),
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["dataset"], r["model"]) for r in rows} == {("digits", "SketchODE"), ("digits", "LSTM-LSTM")}
    recs = json.loads(out.read_text())["runs"]
    assert all("recognition" in r for r in recs)


# ---------------------------------------------------------------- real data
@pytest.fixture
def real_root(data_root, monkeypatch):
    monkeypatch.setenv("SKETCHODE_DATA", str(data_root))

    def refuse(url, *a, **k):
        raise AssertionError(f"test tried to download {url}")

    monkeypatch.setattr(pooch, "retrieve", refuse)
    return data_root


@pytest.mark.realdata
def test_joined_quickdraw_categories(real_root):
    both = load("quickdraw-raw/face,fish,flower", "test")
    parts = [load(f"quickdraw-raw/{c}", "test") for c in ("face", "fish", "flower")]
    assert [s.key for s in both] == [s.key for p in parts for s in p]
    assert {s.label for s in both} == {"face", "fish", "flower"}
    assert len(load("quickdraw-raw/face,fish,flower", "all")) == 31 + 35 + 26
    with pytest.raises(ValueError, match="distinct categories"):
        load("quickdraw-raw/face,face")
    with pytest.raises(FileNotFoundError, match="Did you mean 'fish'"):
        load("quickdraw-raw/face,fsh")


@pytest.mark.realdata
def test_recognition_set_adds_other_doodles_to_a_single_class(real_root):
    test = recognition_set("sheep", "test")
    sheep = [s for s in test if s.label == "sheep"]
    other = [s for s in test if s.label == OTHER]
    assert len(sheep) == 300 and len(other) > 1000 and len(sheep) + len(other) == len(test)
    assert not any(s.key.startswith("quickdraw-raw/sheep") for s in other)  # Quick, Draw! sheep are not "other"
    train_keys = {s.key for s in recognition_set("sheep", "train") if s.label == OTHER}
    assert train_keys.isdisjoint(s.key for s in other)  # the split is kept
    # a dataset of several classes is left as it is
    doodles = recognition_set("quickdraw-raw/face,fish,flower", "test")
    assert [s.key for s in doodles] == [s.key for s in prepare(load("quickdraw-raw/face,fish,flower", "test"))]


def test_chamfer_in_chunks_equals_all_at_once():
    rng = np.random.default_rng(0)
    a = [_sk(rng.normal(size=(5, 2)), rng.normal(size=(3, 2))) for _ in range(7)]
    b = [_sk(rng.normal(size=(4, 2))) for _ in range(7)]
    np.testing.assert_array_equal(chamfer(a, b, chunk=3), chamfer(a, b, chunk=512))
