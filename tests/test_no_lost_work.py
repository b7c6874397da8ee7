"""No one loses a training run (issue 14): refusals, the checkpoint lock, interrupts, step checkpoints, CLI errors."""

import os
import signal

import pytest
import torch

import sketchode.training.fit as tr
from sketchode.cli.main import main
from sketchode.models.lstm import RNNAutoencoder
from sketchode.training.checkpoint import load_checkpoint
from sketchode.data.synthetic import digits
from sketchode.training.fit import fit

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = dict(progress=False, threads=1, batch_size=8)


@pytest.fixture(scope="module")
def data():
    return digits(n_per_class=4)[:32]


def _model(seed=0):
    torch.manual_seed(seed)
    return RNNAutoencoder(d=8, l=4, G=20)


def test_fit_refuses_to_replace_a_finished_run(tmp_path, data):
    path = tmp_path / "run.pt"
    fit(_model(), data, steps=4, checkpoint=path, **FAST)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists; pass resume=True"):
        fit(_model(1), data, steps=1, checkpoint=path, **FAST)
    assert path.read_bytes() == before
    fit(_model(1), data, steps=1, checkpoint=path, overwrite=True, **FAST)  # said explicitly: replaced
    assert load_checkpoint(path)["train_state"]["step"] == 1


def test_a_directory_as_checkpoint_is_refused_before_training(tmp_path, data):
    with pytest.raises(ValueError, match="is a directory"):
        fit(_model(), data, steps=1, checkpoint=tmp_path, **FAST)


def test_a_second_trainer_of_the_same_path_is_refused(tmp_path, data):
    path = tmp_path / "run.pt"
    other = tr._PathLock(path)
    other.acquire("test")  # another process holding the path (flock conflicts across open files)
    try:
        with pytest.raises(RuntimeError, match="another process is training into"):
            fit(_model(), data, steps=1, checkpoint=path, **FAST)
        assert not path.exists()
    finally:
        other.release()
    fit(_model(), data, steps=1, checkpoint=path, **FAST)  # free again
    assert not (tmp_path / "run.pt.lock").exists()


def test_ctrl_c_finishes_the_step_saves_and_resumes_exactly(tmp_path, data):
    path = tmp_path / "run.pt"
    m = _model()
    calls = []
    plain = m.loss

    def loss(batch, return_parts=False):  # Ctrl-C arrives in the middle of step 3
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return plain(batch, return_parts)

    m.loss = loss
    with pytest.warns(UserWarning, match="interrupted after step 3"):
        h = fit(m, data, steps=8, checkpoint=path, **FAST)
    assert h.stopped == "interrupted"
    assert load_checkpoint(path)["train_state"]["step"] == 3
    resumed = _model()
    fit(resumed, data, steps=8, checkpoint=path, resume=True, **FAST)
    straight = _model()
    fit(straight, data, steps=8, **FAST)
    for k, v in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, rtol=0, atol=1e-6)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


def test_checkpoint_steps_writes_mid_epoch(tmp_path, data, monkeypatch):
    written = []
    real = tr.save_checkpoint

    def spy(path, model, opt, sched, state):
        written.append(state["step"])
        return real(path, model, opt, sched, state)

    monkeypatch.setattr(tr, "save_checkpoint", spy)
    fit(_model(), data, steps=3, batch_size=4, checkpoint=tmp_path / "r.pt", checkpoint_steps=1,
        progress=False, threads=1)  # 8 steps per epoch: only step checkpoints until the end
    assert written == [1, 2, 3]


# ------------------------------------------------------------------ the command line
def _train(tmp_path, *extra):
    return main(["train", "tiny", "--steps", "2", "--val-size", "8", "--json", *extra])


def test_cli_train_twice_onto_one_out_refuses_the_second(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    assert _train(tmp_path, "--out", str(out)) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert _train(tmp_path, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0] and "--resume" in err[0]
    assert out.read_bytes() == before
    assert _train(tmp_path, "--out", str(out), "--resume", "--steps", "3") == 0  # --steps wins the group
    assert load_checkpoint(out)["train_state"]["step"] == 3
    log = (tmp_path / "tiny.json").read_text()
    assert log.count('"argv"') == 2  # the run log keeps both commands


@pytest.mark.parametrize("args, words", [
    (["--out", "{tmp}"], "is a directory"),
    (["--fraction", "2"], "--fraction must lie in (0, 1]"),
    (["--set", "no_such_key=3"], "unknown setting"),
])
def test_cli_expected_failures_are_one_line(tmp_path, capsys, args, words):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "x.pt")]
    code = _train(tmp_path, *args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    code = _train(tmp_path, "--out", str(tmp_path / "x.pt"), "--device", "cuda")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--device cpu" in err[0], err


def test_run_log_records_the_command_chain_cpu_time_and_snapshots_and_curve_scores_them(tmp_path, capsys):
    import json

    out = tmp_path / "tiny.pt"
    assert main(["train", "tiny", "--epochs", "2", "--val-size", "16", "--fraction", "0.02", "--json",
                 "--out", str(out)]) == 0
    assert main(["train", "tiny", "--epochs", "4", "--val-size", "16", "--fraction", "0.02", "--json",
                 "--out", str(out), "--resume"]) == 0
    log = json.loads((tmp_path / "tiny.json").read_text())
    assert [c["argv"][-1] for c in log["commands"]] == [str(out), "--resume"]
    assert log["commands"][1]["step_from"] == log["commands"][0]["step_to"] > 0
    assert log["total_cpu_s"] > 0 and log["commands"][0]["hardware"]["cpus"] >= 1
    assert [p["epoch"] for p in log["curve"]] == [1, 2, 3, 4]
    assert [s["epoch"] for s in log["snapshots"]] == [1, 2, 4]  # doubling epochs
    capsys.readouterr()
    assert main(["curve", str(tmp_path / "tiny.json"), "--limit", "40", "--json",
                 "--out", str(tmp_path / "curve.json")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [p["epoch"] for p in res["points"]] == [1, 2, 4]
    assert all(0 <= p["retrieval_top1"] <= 1 and p["chamfer"] > 0 and p["n"] == 40 for p in res["points"])
    assert res["points"][0]["cpu_h"] < res["points"][-1]["cpu_h"] <= res["total_cpu_h"] + 1e-4


def test_campaign_runs_on_the_cpu_at_a_tiny_size_and_resumes(tmp_path, capsys):
    import json

    args = ["campaign", "--out-dir", str(tmp_path), "--minutes", "0.02", "--jobs", "tiny:0", "tiny:1",
            "--limit-train", "64", "--device", "cpu", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [j["job"] for j in rep["jobs"]] == ["tiny:0", "tiny:1"] and rep["device"] == "cpu"
    assert all(j["steps"] >= 1 and j["step_s"] > 0 for j in rep["jobs"])
    assert (tmp_path / "tiny-s0.pt").exists() and (tmp_path / "tiny-s0.json").exists()
    assert json.loads((tmp_path / "campaign.json").read_text())["jobs"] == rep["jobs"]
    first = rep["jobs"][0]["steps"]
    assert main(args) == 0  # a second campaign resumes the same checkpoints
    again = json.loads(capsys.readouterr().out)["jobs"][0]
    assert again["steps"] > first and again["steps_this_run"] == again["steps"] - first
    assert main(["campaign", "--out-dir", str(tmp_path), "--jobs", "nope:0"]) == 2


def test_skip_spikes_skips_exploding_steps_without_changing_the_schedule(tmp_path, data):
    """A rare exploding gradient (chapter 9: long Omniglot drawings) is skipped, not applied; the run goes on."""
    m = _model()
    calls = []
    plain = m.loss

    def loss(batch, return_parts=False):  # step 20's loss is multiplied by 1e12: a gradient spike
        calls.append(1)
        out = plain(batch, return_parts)
        return out * 1e12 if len(calls) == 20 else out

    m.loss = loss
    h = fit(m, data, steps=24, skip_spikes=100.0, **FAST)
    assert h.stopped == "steps" and h.last["skipped"] == 1 and h.last["step"] == 24
    ref = _model()
    h2 = fit(ref, data, steps=24, **FAST)  # without the spike nothing is skipped
    assert h2.last.get("skipped") is None
    with pytest.raises(ValueError, match="skip_spikes must be > 1"):
        fit(_model(), data, steps=1, skip_spikes=0.5, **FAST)


def test_without_skip_spikes_an_infinite_gradient_still_stops_training(data):
    from sketchode.training.fit import TrainingDiverged

    m = _model()
    next(m.parameters()).register_hook(lambda g: g * float("inf"))  # finite loss, infinite gradient
    with pytest.raises(TrainingDiverged, match="gradient norm"):
        fit(m, data, steps=3, **FAST)
    m2 = _model()
    next(m2.parameters()).register_hook(lambda g: g * float("inf"))
    with pytest.raises(TrainingDiverged, match="50 spikes in a row"):
        fit(m2, data, steps=60, skip_spikes=10.0, **FAST)
