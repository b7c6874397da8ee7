"""Named configs, the benchmark, evaluation and the train/evaluate/bench commands (issue 3)."""
import json

import pytest
import torch

from sketchode.cli.main import main
from sketchode.cli.bench import bench
from sketchode.training.checkpoint import load_checkpoint, load_model
from sketchode.training.configs import CONFIGS, build_model, get_config
from sketchode.data.sketch import prepare
from sketchode.data.synthetic import digits
from sketchode.evaluation.scores import evaluate_checkpoint, reconstruct
from sketchode.evaluation.recognition import save_recognizer, train_recognizer


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py: small tensors run best on one thread


def test_paper_configs():
    c = get_config("digits")
    assert (c.kwargs["d"], c.kwargs["l"], c.kwargs["G"], c.kwargs["n_hidden"]) == (64, 48, 75, 2)
    m = build_model("digits")
    assert m.config["hidden"] == [77, 77] and m.config["T"] == 5.0  # ceil(1.2 * 64) = 77, section 5.1
    assert m.default_lr == 3e-3 and c.train["lr"] == 3e-3 and c.train["clip"] == 0.01
    for name, d, l in (("sheep", 144, 96), ("didi", 96, 84)):
        k = CONFIGS[name].kwargs
        assert (k["d"], k["l"], k["G"], k["n_hidden"]) == (d, l, 30, 1)
    assert get_config("digits-rnn").train["lr"] == 1e-4
    with pytest.raises(ValueError, match="unknown config 'nope'.*digits"):
        get_config("nope")


def test_bench_keys_and_consistency():
    r = bench(d=8, l=4, batch=4, G=10, rounds=1, warmup=0, threads=1)
    for k in ("sketchode_s", "rnn_s", "naive_s", "ratio", "speedup_vs_naive", "device"):
        assert k in r
    assert r["ratio"] == pytest.approx(r["sketchode_s"] / r["rnn_s"], rel=1e-2)
    assert r["speedup_vs_naive"] == pytest.approx(r["naive_s"] / r["sketchode_s"], rel=1e-2)
    assert r["device"] == "cpu" and r["threads"] == 1
    assert r["loops"] in ("cpp", "python")
    assert r["sketchode_gflop"] > r["rnn_gflop"] > 0


def test_cli_bench_json(capsys):
    assert main(["bench", "--json", "--d", "8", "--l", "4", "--batch", "4", "--G", "10", "--rounds", "1",
                 "--threads", "1", "--no-naive", "--loops", "python"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["naive_s"] is None and r["speedup_vs_naive"] is None and r["sketchode_s"] > 0
    assert r["loops"] == "python"


def test_step_flops_counts_matmuls_and_lstm_layers():
    """Linear layers from the counter, LSTM layers from their shapes (oneDNN's kernel is invisible to it)."""
    from types import SimpleNamespace

    from sketchode.cli.bench import step_flops

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, 7)
            self.rnn = torch.nn.LSTM(5, 6, batch_first=True, bidirectional=True)

        def loss(self, b):
            return self.lin(b.x).sum() + self.rnn(b.x)[0].sum()

    B, T = 3, 11
    x = torch.randn(B, T, 5)
    lin = 2 * B * T * 5 * 7 * 2  # forward and the weight gradient (x needs no gradient)
    lstm = 3 * 2 * 4 * 6 * (5 + 6) * T * B * 2
    assert step_flops(Toy(), SimpleNamespace(x=x)) == lin + lstm


@pytest.fixture(scope="module")
def tiny_recognizer(tmp_path_factory):
    sk = prepare(digits(n_per_class=30))
    rec = train_recognizer(sk, epochs=1, seed=0)
    path = tmp_path_factory.mktemp("rec") / "digits.pt"
    save_recognizer(rec, path)
    return rec, path


def test_cli_train_then_evaluate(capsys, tmp_path, tiny_recognizer):
    out = tmp_path / "tiny.pt"
    assert main(["train", "tiny", "--steps", "3", "--out", str(out), "--threads", "1", "--val-size", "0",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["stopped"] == "steps" and r["dataset"] == "digits"
    ck = load_checkpoint(out)
    assert ck["class"] == "SketchODE" and ck["train_state"]["meta"] == {"config": "tiny", "dataset": "digits"}
    assert torch.load(out, weights_only=True)["config"]["d"] == 16
    assert main(["evaluate", str(out), "--limit", "40", "--recognizer", str(tiny_recognizer[1]), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    assert e["dataset"] == "digits" and e["n"] == 40 and e["loss"] > 0 and 0 <= e["accuracy"] <= 1
    assert e["accuracy_data"] >= e["accuracy"] - 1.0 and e["class"] == "SketchODE"


def test_cli_train_needs_a_budget(capsys):
    assert main(["train", "tiny"]) == 2
    assert "--steps" in capsys.readouterr().err


def test_evaluate_rnn_with_generic_reconstruct(tiny_recognizer):
    m = build_model("digits-rnn", d=8, l=4, G=20)
    sk = prepare(digits(n_per_class=2, seed=1))
    rec = reconstruct(m, sk)
    assert len(rec) == len(sk) and [s.label for s in rec] == [s.label for s in sk]
    r = evaluate_checkpoint(m, "digits", limit=20, recognizer=tiny_recognizer[0])
    assert r["n"] == 20 and r["accuracy"] is not None and r["recognizer"] == "given"


def test_load_model_after_cli_train(tmp_path, capsys):
    out = tmp_path / "t.pt"
    assert main(["train", "tiny", "--steps", "1", "--out", str(out), "--threads", "1", "--val-size", "0",
                 "--json"]) == 0
    m = load_model(out)
    assert not m.training and m.config["G"] == 25


def test_load_or_train_loads_a_matching_checkpoint_and_trains_otherwise(tmp_path, capsys):
    from sketchode.book.budget import load_or_train

    out = tmp_path / "tiny.pt"
    assert main(["train", "tiny", "--steps", "2", "--out", str(out), "--threads", "1", "--val-size", "0",
                 "--json"]) == 0
    m, hist, source = load_or_train("tiny", out)
    assert source == str(out) and not m.training and hist.records[-1]["step"] == 2
    ref = load_model(out)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), ref.state_dict().values()))
    # a checkpoint of another config is not used: the small budget trains instead
    m2, hist2, source2 = load_or_train("tiny", tmp_path / "missing.pt", fast_steps=2, fast_train=16, threads=1)
    assert source2 == "trained" and hist2.records[-1]["step"] == 2 and m2.config == build_model("tiny").config
