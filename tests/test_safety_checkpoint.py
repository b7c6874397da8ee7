"""No lost work: checkpoint load errors that say what failed, and no temp files left by killed saves.

Reproduces two defects of sketchode.training.checkpoint: every load failure was called "not a sketchode
checkpoint" (a truncated file, a good file opened with map_location="cuda" on a CPU-only machine),
a silently corrupted file loaded wrong weights (torch does not check the zip CRCs), and a save
killed with SIGKILL left ``.NAME.XXXX.tmp`` behind for ever.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest
import torch

from sketchode.training import checkpoint as ck
from sketchode.models.lstm import RNNAutoencoder
from sketchode.training.checkpoint import load_checkpoint, load_model, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed=0):
    torch.manual_seed(seed)
    return RNNAutoencoder(d=8, l=4, G=20)


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "m.pt", _model())


class Gadget:
    """A custom object, which ``torch.load(weights_only=True)`` refuses."""


# ---------------------------------------------------------------- 4. what failed
def test_truncated_checkpoint_says_truncated(saved):
    data = saved.read_bytes()
    saved.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError) as e:
        load_checkpoint(saved)
    msg = str(e.value)
    assert str(saved) in msg and "truncated or corrupt" in msg and "not a sketchode checkpoint" not in msg


def test_empty_checkpoint_says_empty(tmp_path):
    p = tmp_path / "m.pt"
    p.write_bytes(b"")
    with pytest.raises(ValueError, match=r"m\.pt is empty \(0 bytes\)"):
        load_checkpoint(p)


def test_corrupt_weights_are_refused_not_loaded(saved):
    with zipfile.ZipFile(saved) as z:
        info = next(i for i in z.infolist() if "/data/" in i.filename and i.file_size > 64)
    raw = bytearray(saved.read_bytes())
    start = info.header_offset + 30 + int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little") \
        + int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    raw[start + info.file_size // 2] ^= 0x40  # one flipped bit in a weight: torch.load alone would not notice
    saved.write_bytes(bytes(raw))
    torch.load(saved, weights_only=True)  # (it really does load)
    with pytest.raises(ValueError, match=rf"m\.pt is corrupt: its record '{info.filename}' fails the CRC check"):
        load_checkpoint(saved)
    with pytest.raises(ValueError, match="CRC"):
        load_model(saved)


def test_cuda_on_a_cpu_only_machine_says_use_cpu(saved, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only machine, also where CUDA exists
    for call in (lambda: load_checkpoint(saved, map_location="cuda"),
                 lambda: load_model(saved, map_location=torch.device("cuda", 0))):
        with pytest.raises(ValueError) as e:
            call()
        msg = str(e.value)
        assert str(saved) in msg and "CUDA is not available" in msg
        assert 'map_location="cpu"' in msg and "--device cpu" in msg
        assert "not a sketchode checkpoint" not in msg and "intact" in msg
    assert load_checkpoint(saved, map_location="cpu")["class"] == "RNNAutoencoder"


def test_pickled_objects_and_foreign_files_are_named(tmp_path):
    p = tmp_path / "gadget.pt"
    torch.save({"a": Gadget()}, p)
    with pytest.raises(ValueError, match=r"gadget\.pt is not a sketchode checkpoint: it holds pickled Python "
                                         r"objects .* \(it names .*Gadget\)"):
        load_checkpoint(p)
    q = tmp_path / "notes.pt"
    q.write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"notes\.pt is not a sketchode checkpoint: it was not written by torch\.save"):
        load_checkpoint(q)


def test_truncated_legacy_file_says_truncated(tmp_path):
    p = tmp_path / "old.pt"
    torch.save({"a": torch.zeros(30)}, p, _use_new_zipfile_serialization=False)
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"old\.pt is truncated"):
        load_checkpoint(p)


# ---------------------------------------------------------------- 5. temp files of killed saves
def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid is free
    return proc.pid


def _temp(folder, name, mtime=None):
    p = folder / name
    p.write_bytes(b"partial")
    if mtime is not None:
        os.utime(p, (mtime, mtime))
    return p


@pytest.mark.skipif(os.name == "nt", reason="process ids are checked with os.kill(pid, 0) on POSIX only")
def test_stale_temp_files_removed_live_writers_kept(tmp_path):
    host, me, dead = ck._host_tag(), os.getpid(), _dead_pid()
    other_host = "0" * 8 if host != "0" * 8 else "1" * 8
    old = time.time() - 2 * ck.STALE_AFTER_S
    live = subprocess.Popen(["sleep", "120"])
    try:
        stale = [
            _temp(tmp_path, f".m.pt.{host}-{dead}.k2j4h5g6.tmp"),  # killed writer on this host
            _temp(tmp_path, f".m.pt.{other_host}-{dead}.aaaa1111.tmp", old),  # other host, no write for 2 h
            _temp(tmp_path, ".m.pt.abcd_123.tmp", old),  # an older version's name (no pid), 2 h old
        ]
        kept = [
            _temp(tmp_path, f".m.pt.{host}-{live.pid}.zzzz9999.tmp"),  # a live writer
            _temp(tmp_path, f".m.pt.{host}-{me}.yyyy8888.tmp"),  # this process (another thread's save)
            _temp(tmp_path, f".m.pt.{other_host}-{dead}.bbbb2222.tmp"),  # other host, written just now
            _temp(tmp_path, ".m.pt.abcd_124.tmp"),  # no pid, written just now
            _temp(tmp_path, f".m.pt.bak.{host}-{dead}.cccc3333.tmp", old),  # the temp file of another path
            _temp(tmp_path, ".m.pt.notes.tmp", old),  # not a temp name of ours
        ]
        # a live pid that started after the file's last write (2 h ago) is not its writer: the pid was reused
        reused = _temp(tmp_path, f".m.pt.{host}-{live.pid}.xxxx7777.tmp", old)
        (stale if ck._start_time(live.pid) is not None else kept).append(reused)
        assert ck.stale_temp_files(tmp_path / "m.pt") == sorted(stale)
        save_checkpoint(tmp_path / "m.pt", _model())
        assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
        assert load_checkpoint(tmp_path / "m.pt")["class"] == "RNNAutoencoder"
    finally:
        live.kill()
        live.wait()


def test_start_time_of_this_process(tmp_path):
    started = ck._start_time(os.getpid())
    if started is None:
        pytest.skip("no /proc here")
    assert started <= time.time() and started > time.time() - 7 * 24 * 3600


def test_temp_file_name_carries_host_and_pid(tmp_path, monkeypatch):
    seen = []
    real = torch.save

    def spy(obj, f, *a, **kw):
        seen.extend(n for n in os.listdir(tmp_path) if n.endswith(".tmp"))
        return real(obj, f, *a, **kw)

    monkeypatch.setattr(torch, "save", spy)
    save_checkpoint(tmp_path / "m.pt", _model())
    (name,) = seen
    assert name.startswith(f".m.pt.{ck._host_tag()}-{os.getpid()}.") and name.endswith(".tmp")
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


@pytest.mark.skipif(os.name == "nt", reason="SIGKILL is POSIX")
def test_save_killed_with_sigkill_is_cleaned_up_by_the_next_save(tmp_path):
    target = tmp_path / "m.pt"
    script = textwrap.dedent(f"""
        import sys, time, torch
        from sketchode.training import checkpoint as ck

        def stuck(obj, f, *a, **k):
            f.write(b"PARTIAL" * 1000)
            f.flush()
            print("writing", flush=True)
            time.sleep(600)

        torch.save = stuck
        ck.atomic_save({{"x": 1}}, {str(target)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    left = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(left) == 1 and f"-{proc.pid}." in left[0]  # what kill -9 leaves behind
    save_checkpoint(target, _model())
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]
    assert load_checkpoint(target)["class"] == "RNNAutoencoder"
