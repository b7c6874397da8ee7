"""The command line (python -m sketchode)."""
import json
import subprocess
import sys

from sketchode.cli.main import main


def test_info_json(capsys, tmp_path):
    assert main(["info", "--json", "--data-root", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["data_root"] == str(tmp_path) and out["data_root_from"] == "--data-root"
    assert out["datasets_present"] == ["digits", "digits-wide", "letters"] and out["quickdraw_categories_present"] == 0


def test_data_digits_and_svg(capsys, tmp_path):
    svg = tmp_path / "d.svg"
    assert main(["data", "digits", "--split", "test", "--json", "--svg", str(svg)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == 10 and 1800 < out["drawings"] < 2200 and out["timed"] == out["drawings"]
    assert svg.read_text().lstrip().startswith("<svg") or "<svg" in svg.read_text()


def test_missing_dataset_is_a_clear_error(capsys, tmp_path):
    assert main(["data", "vectormnist", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "VectorMNIST" in err and str(tmp_path) in err


def test_module_entry_point():
    r = subprocess.run([sys.executable, "-m", "sketchode", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "info" in r.stdout and "data" in r.stdout
