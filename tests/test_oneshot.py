"""One-shot fine-tuning of chapter 13 (paper 5.4)."""
import json

import pytest
import torch

from sketchode.cli.main import main
from sketchode.training.checkpoint import load_checkpoint
from sketchode.models.full_sequence import SketchODE
from sketchode.book.ch13_one_shot import finetune, held_out, one_shot_set
from sketchode.training.fit import evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def test_one_shot_set_picks_one_of_each_class_deterministically():
    a = one_shot_set("ABD")
    assert [s.label for s in a] == ["A", "B", "D"] and [s.key for s in a] == [s.key for s in one_shot_set("ABD")]
    b = one_shot_set("ABD", index=1)
    assert all(x.key != y.key for x, y in zip(a, b))
    assert [s.label for s in one_shot_set("AB", per_class=2)] == ["A", "A", "B", "B"]
    ho = held_out("AB", per_class=5)
    assert len(ho) == 10 and not {s.key for s in ho} & {s.key for s in one_shot_set("AB", per_class=20)}
    with pytest.raises(ValueError, match="class 'Q'"):
        one_shot_set("AQ")
    with pytest.raises(ValueError):
        one_shot_set("A", per_class=0)


def test_finetune_fits_the_shots():
    torch.manual_seed(0)
    m = SketchODE(d=8, l=6, G=20, n_hidden=1)
    shots = one_shot_set("AB")
    before = evaluate(m, shots)["total"]
    hist = finetune(m, shots, steps=40)
    assert hist.stopped == "steps" and hist.last["step"] == 40
    assert evaluate(m, shots)["total"] < 0.7 * before
    with pytest.raises(ValueError):
        finetune(m, [], steps=1)


def test_cli_finetune_then_evaluate_on_the_classes(tmp_path, capsys):
    torch.manual_seed(0)
    base = tmp_path / "base.pt"
    assert main(["train", "tiny", "--steps", "2", "--val-size", "0", "--out", str(base), "--json", "--threads", "1"]) == 0
    capsys.readouterr()
    out = tmp_path / "ft.pt"
    assert main(["finetune", str(base), "--classes", "AB", "--steps", "5", "--held-out", "3", "--out", str(out),
                 "--json", "--threads", "1"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["steps"] == 5 and res["n_held_out"] == 6 and len(res["shots"]) == 2
    meta = load_checkpoint(out)["train_state"]["meta"]
    assert meta["classes"] == "AB" and meta["dataset"] == "letters" and meta["config"] == "tiny"
    rec = tmp_path / "rec.pt"
    from sketchode.data import load, prepare
    from sketchode.evaluation.recognition import save_recognizer, train_recognizer

    save_recognizer(train_recognizer(prepare(load("letters", "train")[:200]), epochs=1, seed=0), rec)
    assert main(["evaluate", str(out), "--json", "--limit", "4", "--recognizer", str(rec)]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["dataset"] == "letters" and ev["classes"] == "AB" and ev["n"] == 4
