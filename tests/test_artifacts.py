"""Shipped checkpoints and results in a checkout and in an installed wheel (sketchode.pretrained).

An installed wheel has no ``data/`` folder: the tests stand one in by pointing
:func:`sketchode.pretrained.checkout_data_dir` at an empty folder, and mock
``pooch.retrieve`` (it copies the checkout's file, so the registry's SHA-256
holds); nothing here touches the network.
"""
import shutil
from pathlib import Path

import pooch
import pytest

import sketchode.book.budget
from sketchode import pretrained as A
from sketchode.evaluation.scores import recognizer_for
from sketchode.book.budget import load_or_train
from sketchode.pretrained import shipped_checkpoint
from sketchode.training.fit import History

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
needs_checkout = pytest.mark.skipif(not (DATA / "checkpoints").is_dir(), reason="not a checkout: no data/ folder")
DIGITS_URL = "https://github.com/sketchode-book/sketchode-book/raw/main/data/checkpoints/digits.pt"


@pytest.fixture(autouse=True)
def clean(monkeypatch, tmp_path):
    """Every test gets its own empty cache; the registry and the verified-files memo start afresh."""
    monkeypatch.setenv("SKETCHODE_CACHE", str(tmp_path / "cache"))
    A._VERIFIED.clear()
    A.registry.cache_clear()
    yield
    A._VERIFIED.clear()
    A.registry.cache_clear()


@pytest.fixture
def wheel(monkeypatch, tmp_path):
    """An installed wheel: the package's checkout has no data/ folder."""
    monkeypatch.setattr(A, "checkout_data_dir", lambda: tmp_path / "site-packages" / "data")


@pytest.fixture
def no_network(monkeypatch):
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: (_ for _ in ()).throw(AssertionError("no download")))


@pytest.fixture
def fake_retrieve(monkeypatch):
    """pooch.retrieve that 'downloads' the checkout's copy of the file the URL names."""
    calls = []

    def retrieve(url, known_hash=None, fname=None, path=None, progressbar=False, **kw):
        calls.append({"url": url, "known_hash": known_hash, "fname": fname, "path": Path(path)})
        rel = url.split("/raw/main/data/", 1)[1]
        out = Path(path) / fname
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / rel, out)
        return str(out)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "1")
    return calls


# ---------------------------------------------------------------- the registry
@needs_checkout
def test_registry_lists_every_file_of_data_with_its_sha256():
    """Fails when a checkpoint or result was added, retrained or removed without regenerating the registry."""
    shipped = (ROOT / "sketchode" / "data" / "registry" / "artifacts.txt").read_text().splitlines()
    assert shipped == A.registry_lines(DATA), (
        "sketchode/data/registry/artifacts.txt is out of date with data/: run "
        "python -c \"from sketchode.pretrained import write_registry; write_registry()\"")
    on_disk = {f"{k}/{p.name}" for k in A.KINDS for p in (DATA / k).iterdir() if p.is_file()}
    assert set(A.registry()) == on_disk


def test_registry_lines_and_write_registry(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "checkpoints" / "a.pt").write_bytes(b"abc")
    (tmp_path / "checkpoints" / ".a.pt.tmp").write_bytes(b"partial")
    (tmp_path / "results" / "r.json").write_text("{}")
    (tmp_path / "README.md").write_text("not an artifact")
    lines = [ln for ln in A.registry_lines(tmp_path) if not ln.startswith("#")]
    assert lines == ["ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  3  checkpoints/a.pt",
                     "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a  2  results/r.json"]
    out = A.write_registry(tmp_path, out=tmp_path / "reg.txt")
    assert out.read_text().splitlines()[2:] == lines


def test_download_url_is_the_repository_of_the_book():
    yaml = pytest.importorskip("yaml")
    config = ROOT / "_config.yml"
    if not config.is_file():
        pytest.skip("not a checkout: no _config.yml")
    repo = yaml.safe_load(config.read_text())["repository"]
    assert (A.REPOSITORY_URL, A.BRANCH) == (repo["url"], repo["branch"])
    assert A.url_for("checkpoints/digits.pt") == DIGITS_URL
    assert A.url_for("data/results/ablation.json").endswith("/raw/main/data/results/ablation.json")
    with pytest.raises(ValueError):
        A.url_for("../secrets.txt")


def test_registry_ships_in_the_package():
    """The registry is read as package data (pyproject: sketchode/data/registry/*.txt), not from the checkout."""
    reg = A.registry()
    assert "checkpoints/digits.pt" in reg and "results/reconstruction-sheep.json" in reg
    assert "checkpoints/recognizer-digits.pt" in reg and "checkpoints/digits.json" in reg
    digest, size = reg["checkpoints/digits.pt"]
    assert len(digest) == 64 and size > 0
    text = (ROOT / "pyproject.toml").read_text() if (ROOT / "pyproject.toml").is_file() else None
    if text is not None:
        assert '"data/registry/*.txt"' in text.split("[tool.setuptools.package-data]", 1)[1]


# ---------------------------------------------------------------- a checkout: no download
@needs_checkout
def test_a_checkout_uses_its_data_folder_without_downloading(no_network, monkeypatch, capsys):
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "1")
    assert shipped_checkpoint("digits") == DATA / "checkpoints" / "digits.pt"
    assert A.result("ablation") == DATA / "results" / "ablation.json"
    assert A.fetch("data/checkpoints/digits.json") == DATA / "checkpoints" / "digits.json"
    # the shipped recognizer of the checkout, unchanged: loaded, not trained
    monkeypatch.setattr("sketchode.evaluation.recognition.train_recognizer",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("trained")))
    rec = recognizer_for("digits")
    assert rec is not None and rec.classes is not None
    assert not (Path(A.cache_dir())).exists()
    assert "downloading" not in capsys.readouterr().err


def test_a_file_in_data_is_used_as_it_is(tmp_path, monkeypatch, no_network):
    data = tmp_path / "data"
    (data / "checkpoints").mkdir(parents=True)
    (data / "checkpoints" / "mine.pt").write_bytes(b"not in the registry, still used")
    monkeypatch.setattr(A, "checkout_data_dir", lambda: data)
    assert A.checkpoint("mine") == data / "checkpoints" / "mine.pt"
    assert A.checkpoint("nothing-shipped") is None
    assert shipped_checkpoint("tiny") is None  # no checkpoint is shipped for it: None, no download


# ---------------------------------------------------------------- a wheel: download into the cache
@needs_checkout
def test_a_wheel_downloads_a_missing_checkpoint_into_the_cache_with_the_registry_hash(wheel, fake_retrieve, capsys):
    from sketchode.training.checkpoint import load_model

    path = shipped_checkpoint("digits")
    cache = Path(A.cache_dir())
    assert path == cache / "checkpoints" / "digits.pt"
    assert [c["url"] for c in fake_retrieve] == [DIGITS_URL, DIGITS_URL[: -len(".pt")] + ".json"]
    assert fake_retrieve[0]["known_hash"] == "sha256:" + A.registry()["checkpoints/digits.pt"][0]
    assert fake_retrieve[1]["known_hash"] == "sha256:" + A.registry()["checkpoints/digits.json"][0]
    assert fake_retrieve[0]["path"] == cache / "checkpoints" and fake_retrieve[0]["fname"] == "digits.pt"
    assert (cache / "checkpoints" / "digits.json").is_file()  # the run log beside it
    err = capsys.readouterr().err
    assert "downloading it" in err and DIGITS_URL in err and str(cache / "checkpoints") in err
    assert load_model(path).config["G"] == load_model(DATA / "checkpoints" / "digits.pt").config["G"]
    # the next call finds the cached copy (its sha256 checked): no second download
    A._VERIFIED.clear()
    assert shipped_checkpoint("digits") == path and len(fake_retrieve) == 2
    # results too (chapter 9 and 12's tables)
    assert A.result("reconstruction-sheep") == cache / "results" / "reconstruction-sheep.json"
    assert fake_retrieve[-1]["url"].endswith("/raw/main/data/results/reconstruction-sheep.json")


@needs_checkout
def test_a_stale_cached_copy_is_downloaded_again(wheel, fake_retrieve):
    stale = Path(A.cache_dir()) / "results" / "ablation.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert A.result("ablation") == stale
    assert len(fake_retrieve) == 1 and stale.read_bytes() == (DATA / "results" / "ablation.json").read_bytes()


def test_a_checksum_mismatch_says_the_file_changed(wheel, monkeypatch):
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "1")

    def retrieve(*a, **k):
        raise ValueError("SHA256 hash of downloaded file (abc) does not match the known hash")

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    with pytest.raises(ValueError, match=r"does not have the sha256 .* ships for results/ablation.json"):
        A.result("ablation")


def test_a_failed_download_names_the_url(wheel, monkeypatch):
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "1")
    monkeypatch.setattr(pooch, "retrieve", lambda *a, **k: (_ for _ in ()).throw(OSError("no route to host")))
    with pytest.raises(FileNotFoundError, match=r"downloading https://github.com/.*/data/results/ablation.json failed"):
        A.result("ablation")


# ---------------------------------------------------------------- downloads off: a clear error
def test_downloads_off_names_the_file_the_url_and_the_command(wheel, no_network, monkeypatch):
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "0")
    with pytest.raises(FileNotFoundError) as e:
        shipped_checkpoint("digits")
    msg = str(e.value)
    assert "checkpoints/digits.pt" in msg and DIGITS_URL in msg and "SKETCHODE_DOWNLOAD=0" in msg
    assert "SKETCHODE_DOWNLOAD=1 python -c \"from sketchode.pretrained import fetch; fetch('checkpoints/digits.pt')\"" in msg
    with pytest.raises(FileNotFoundError, match="download=False"):
        A.result("ablation", download=False)
    assert not Path(A.cache_dir()).exists()


def test_recognizer_for_raises_for_a_shipped_recognizer_it_cannot_get(wheel, no_network, monkeypatch):
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "0")
    with pytest.raises(FileNotFoundError, match=r"recognizer-sheep.pt .*downloads are off"):
        recognizer_for("sheep")
    with pytest.raises(FileNotFoundError, match=r"recognizer-digits.pt"):
        recognizer_for("digits", train_if_missing=False)
    assert recognizer_for("letters-of-no-shipped-kind") is None  # nothing shipped, nothing to train: None


def test_recognizer_for_says_when_it_trains(wheel, no_network, monkeypatch, tmp_path, capsys):
    from sketchode.evaluation.recognition import RecognitionCNN

    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "0")
    monkeypatch.setattr("sketchode.evaluation.scores._cache_dir", lambda: tmp_path / "recognizers")
    trained = []
    monkeypatch.setattr("sketchode.evaluation.recognition.train_recognizer",
                        lambda sketches, epochs, seed: trained.append(epochs) or RecognitionCNN(2, classes=["0", "1"]))
    monkeypatch.setattr("sketchode.evaluation.scores.prepare", lambda s: s)
    monkeypatch.setattr("sketchode.data.load", lambda *a, **k: [])
    rec = recognizer_for("digits", epochs=1)
    assert trained == [1] and rec.classes == ["0", "1"]
    err = capsys.readouterr().err
    assert "recognizer_for('digits')" in err and "training one (1 epochs" in err and "downloads are off" in err
    assert str(tmp_path / "recognizers" / "digits.pt") in err
    # trained once: the next call loads the cached one
    assert recognizer_for("digits").classes == ["0", "1"] and trained == [1]


# ---------------------------------------------------------------- load_or_train trains only when asked
@pytest.fixture
def stub_fit(monkeypatch):
    """fit() and the data: record what would be trained, in no time."""
    calls = []

    def fit(model, train, val=None, device=None, progress=False, **kw):
        calls.append(kw)
        return History(records=[{"step": kw.get("steps", 0)}], stopped="steps")

    monkeypatch.setattr("sketchode.training.fit.fit", fit)
    monkeypatch.setattr("sketchode.data.load", lambda *a, **k: list(range(1000)))
    return calls


@pytest.fixture(params=[True, False], ids=["small-budget", "full-budget"])
def budget(request, monkeypatch):
    monkeypatch.setattr(sketchode.book.budget, "FAST", request.param)
    return request.param


def test_load_or_train_default_trains_only_under_the_small_budget(budget, stub_fit, tmp_path, capsys):
    missing = tmp_path / "missing.pt"
    if budget:
        _, hist, source = load_or_train("tiny", missing, fast_steps=3)
        assert source == "trained" and stub_fit == [{**stub_fit[0], "steps": 3}]
        err = capsys.readouterr().err
        assert "training it for 3 steps on 512 drawings (the small budget, SKETCHODE_FAST=1)" in err
        assert f"{missing} not found" in err
    else:
        with pytest.raises(FileNotFoundError, match=r"no usable checkpoint: .*missing.pt not found.*"
                                                     r"python -m sketchode train tiny --out FILE.*train_if_missing=True"):
            load_or_train("tiny", missing)
        assert stub_fit == []


def test_load_or_train_trains_when_asked_and_never_when_told_not_to(budget, stub_fit, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no usable checkpoint"):
        load_or_train("tiny", tmp_path / "missing.pt", train_if_missing=False)
    assert stub_fit == []
    _, _, source = load_or_train("tiny", tmp_path / "missing.pt", train_if_missing=True, full_time_limit=60.0)
    assert source == "trained" and len(stub_fit) == 1
    err = capsys.readouterr().err
    if budget:
        assert stub_fit[0]["steps"] == 40
    else:
        assert stub_fit[0]["time_limit"] == 60.0
        assert "training it for up to 60 s" in err


def test_load_or_train_in_a_wheel_with_downloads_off_does_not_start_a_full_run(wheel, no_network, stub_fit,
                                                                               monkeypatch):
    monkeypatch.setattr(sketchode.book.budget, "FAST", False)
    monkeypatch.setenv("SKETCHODE_DOWNLOAD", "0")
    with pytest.raises(FileNotFoundError, match=r"load_or_train\('digits'\): no usable checkpoint: "
                                                r"checkpoints/digits.pt is shipped .*downloads are off"):
        load_or_train("digits")
    assert stub_fit == []


@needs_checkout
def test_load_or_train_in_a_wheel_downloads_the_shipped_checkpoint(wheel, fake_retrieve, stub_fit, monkeypatch):
    monkeypatch.setattr(sketchode.book.budget, "FAST", False)
    model, hist, source = load_or_train("digits")
    assert source == str(Path(A.cache_dir()) / "checkpoints" / "digits.pt") and stub_fit == []
    assert not model.training and hist.records


def test_load_or_train_refuses_a_checkpoint_of_another_config(stub_fit, tmp_path, monkeypatch):
    import torch

    from sketchode.training.checkpoint import save_checkpoint
    from sketchode.training.configs import build_model

    monkeypatch.setattr(sketchode.book.budget, "FAST", False)
    torch.manual_seed(0)
    other = tmp_path / "other.pt"
    save_checkpoint(other, build_model("tiny", G=30))
    with pytest.raises(FileNotFoundError, match=r"holds another config of 'tiny' \(G: checkpoint 30, model 25"):
        load_or_train("tiny", other)
    assert stub_fit == []
