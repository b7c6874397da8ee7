"""Grids of short runs for chapter 12 (paper 5.3, figure 5): subsets, augmentation kinds, the runner."""
import json

import numpy as np
import pytest
import torch

import sketchode.book.ch09_reconstruction as ex
from sketchode.cli.main import main
from sketchode.training.checkpoint import load_checkpoint
from sketchode.data import load, subset
from sketchode.data.augment import roughness
from sketchode.book.ch09_reconstruction import (Run, auto_period, load_results, matched_jitter_sigma, plot_ablation,
                                    plot_data_efficiency, run_grid, summarize)
from sketchode.training.fit import augment_batch

pytestmark = pytest.mark.usefixtures("one_thread")


def test_subsets_are_nested_deterministic_and_seeded():
    tr = load("digits", "train")
    sizes = [len(subset(tr, f)) for f in (0.1, 0.25, 0.5)]
    assert sizes == sorted(sizes) and abs(sizes[0] / len(tr) - 0.1) < 0.02 and abs(sizes[2] / len(tr) - 0.5) < 0.03
    small, big = {s.key for s in subset(tr, 0.1)}, {s.key for s in subset(tr, 0.25)}
    assert small <= big
    assert [s.key for s in subset(tr, 0.1)] == [s.key for s in subset(list(tr), 0.1)]
    other = {s.key for s in subset(tr, 0.1, seed=1)}
    assert len(small & other) < 0.3 * len(small)  # a different draw, not the same drawings
    assert len(subset(tr, 1.0)) == len(tr)
    labels = [s.label for s in subset(tr, 0.1)]
    assert min(labels.count(str(d)) for d in range(10)) > 40  # every class is there
    with pytest.raises(ValueError):
        subset(tr, 0.0)
    with pytest.raises(ValueError, match="no key"):
        subset([tr[0].__class__(tr[0].strokes)], 0.5)


def test_augment_batch_kinds():
    sk = [s.normalize() for s in load("digits", "test")[:3]]
    p = augment_batch(sk, [0, 1, 2], 0.05, seed=0, epoch=0, kind="perlin")
    j = augment_batch(sk, [0, 1, 2], 0.02, seed=0, epoch=0, kind="jitter")
    j2 = augment_batch(sk, [0, 1, 2], 0.02, seed=0, epoch=0, kind="jitter")
    assert all(np.array_equal(a.points, b.points) for a, b in zip(j, j2))  # seeded
    # jitter roughens the drawing far more than a Perlin warp of similar size (chapter 6)
    assert np.mean([roughness(x) for x in j]) > 2 * np.mean([roughness(x) for x in p])
    with pytest.raises(ValueError, match="kind"):
        augment_batch(sk, [0, 1, 2], 0.02, seed=0, epoch=0, kind="blur")


def test_matched_jitter_sigma_matches_perlin_displacement():
    from sketchode.data.augment import displacement_rms, gaussian_jitter, perlin
    from sketchode.data.sketch import prepare

    sk = prepare(load("digits", "train")[:40])
    s = matched_jitter_sigma(sk, 0.15, n=40)
    perl = np.mean([displacement_rms(x, perlin(x, sigma=0.15, seed=i)) for i, x in enumerate(sk)])
    jit = np.mean([displacement_rms(x, gaussian_jitter(x, s, seed=i)) for i, x in enumerate(sk)])
    assert jit == pytest.approx(perl, rel=0.05)


def test_run_command_and_auto_period():
    r = Run("x", "digits", 600, seed=2, fraction=0.25, model={"activation": "tanh"}, augment_sigma=0.03,
            augment_kind="jitter")
    c = r.command()
    for part in ("train digits", "--steps 600", "--seed 2", "--fraction 0.25", "--augment 0.03",
                 "--augment-kind jitter", "--set activation=tanh", "--period auto"):
        assert part in c
    assert auto_period(600, 1000, 64) == pytest.approx(600 / 16)


def _tiny_runs(steps=3):
    return [Run("a", "tiny", steps, 0, 0.1, tags={"model": "m"}), Run("b", "tiny", steps, 1, 0.1, tags={"model": "m"})]


def test_run_grid_appends_skips_and_refuses_a_different_grid(tmp_path, monkeypatch):
    out = tmp_path / "g.json"
    calls = []
    real = ex.run_one

    def counting(run, **kw):
        calls.append(run.name)
        return real(run, test_limit=16, **{k: v for k, v in kw.items() if k != "test_limit"})

    monkeypatch.setattr(ex, "run_one", counting)
    data = run_grid(_tiny_runs(), out, log=None)
    assert calls == ["a", "b"] and [r["name"] for r in data["runs"]] == ["a", "b"]
    rec = data["runs"][0]
    assert rec["n_train"] < 1000 and rec["test"]["n"] == 16 and rec["command"].startswith("python -m sketchode train tiny")
    assert json.loads(out.read_text())["runs"][1]["name"] == "b"  # written to disk
    run_grid(_tiny_runs(), out, log=None)
    assert calls == ["a", "b"]  # nothing recomputed
    with pytest.raises(ValueError, match="'a' with different steps"):
        run_grid(_tiny_runs(steps=4), out, log=None)


def test_run_one_is_reproducible():
    a = ex.run_one(_tiny_runs()[0], test_limit=8)
    b = ex.run_one(_tiny_runs()[0], test_limit=8)
    assert a["test"]["total"] == pytest.approx(b["test"]["total"], rel=1e-6)


def test_summarize_groups_by_tags_and_fields():
    recs = [{"tags": {"model": "A"}, "fraction": f, "test": {"total": v}}
            for f, v in [(0.1, 1.0), (0.1, 3.0), (1.0, 2.0)]]
    rows = {(r["model"], r["fraction"]): r for r in summarize(recs)}
    assert rows[("A", 0.1)]["mean"] == 2.0 and rows[("A", 0.1)]["std"] == pytest.approx(2 ** 0.5)
    assert rows[("A", 1.0)]["n"] == 1 and rows[("A", 1.0)]["std"] == 0.0


def test_cli_train_with_overrides_fraction_and_auto_period(tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert main(["train", "tiny", "--steps", "2", "--fraction", "0.1", "--set", "activation=tanh", "--set", "d=8",
                 "--augment", "0.02", "--augment-kind", "jitter", "--period", "auto", "--val-size", "0",
                 "--out", str(out), "--json", "--threads", "1"]) == 0
    capsys.readouterr()
    ck = load_checkpoint(out)
    st = ck["train_state"]["settings"]
    assert ck["config"]["activation"] == "tanh" and ck["config"]["d"] == 8
    assert st["augment_kind"] == "jitter" and st["n_train"] < 1000
    assert st["period"] == pytest.approx(2 / np.ceil(st["n_train"] / 64))
    new = tmp_path / "new.pt"  # (--out must not hold a run: that would be refused first)
    assert main(["train", "tiny", "--epochs", "1", "--period", "auto", "--out", str(new)]) == 2  # needs --steps
    assert "--period auto needs --steps" in capsys.readouterr().err
    assert main(["train", "tiny", "--steps", "1", "--set", "oops", "--out", str(new)]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_cli_experiment_runs_a_grid(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(ex.GRIDS, "ablation", lambda **kw: _tiny_runs(2))
    monkeypatch.setattr(ex, "run_one", lambda run, **kw: {**ex.asdict(run), "test": {"total": 1.0 + run.seed},
                                                     "train_seconds": 0.0})
    out = tmp_path / "abl.json"
    assert main(["experiment", "ablation", "--out", str(out), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [{"variant": None, "mean": 1.5, "std": pytest.approx(0.5 ** 0.5), "min": 1.0, "max": 2.0, "n": 2}]
    assert json.loads(out.read_text())["meta"]["command"].startswith("python -m sketchode experiment ablation")


def test_resume_refuses_a_different_augmentation_kind(tmp_path):
    from sketchode.training.configs import build_model
    from sketchode.training.fit import fit

    ck = tmp_path / "r.pt"
    data = load("digits", "train")[:70]
    torch.manual_seed(0)
    fit(build_model("tiny"), data, steps=1, augment_sigma=0.01, augment_kind="jitter", checkpoint=ck, progress=False)
    with pytest.raises(ValueError, match="augment_kind"):
        fit(build_model("tiny"), data, steps=2, augment_sigma=0.01, checkpoint=ck, resume=True, progress=False)


def test_load_results_and_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    recs = [{"name": f"{m}-{f}-{s}", "fraction": f, "tags": {"model": m, "variant": m}, "test": {"total": 0.1 * s + f}}
            for m in ("A", "B") for f in (0.1, 1.0) for s in range(3)]
    p = tmp_path / "r.json"
    p.write_text(json.dumps({"runs": recs}))
    assert load_results(p)["runs"] == recs
    with pytest.raises(FileNotFoundError, match="no shipped results"):
        load_results("no-such-grid")
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing.json")
    ax = plot_data_efficiency(recs)
    assert len(ax.get_legend().get_texts()) == 2
    ax = plot_ablation(recs, order=["B", "A"])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["B", "A"]


def test_run_grid_reuses_identical_runs_from_another_file(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ex, "run_one", lambda run, **kw: calls.append(run.name) or
                        {**ex.asdict(run), "test": {"total": 1.0}, "train_seconds": 1.0})
    first = tmp_path / "a.json"
    run_grid(_tiny_runs(), first, log=None)
    same_as_a = Run("other-name", "tiny", 3, 0, 0.1, tags={"variant": "v"})
    new = Run("new", "tiny", 3, 5, 0.1, tags={"variant": "v"})
    data = run_grid([same_as_a, new], tmp_path / "b.json", log=None, reuse=[first])
    assert calls == ["a", "b", "new"]
    rec = data["runs"][0]
    assert rec["name"] == "other-name" and rec["tags"] == {"variant": "v"} and rec["reused_from"].endswith("#a")
