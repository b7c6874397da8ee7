"""The C++ accelerator's cache (:mod:`sketchode.accel`): keyed by the source and torch, shared by checkouts, lazy.

* the cache key follows the source text, the torch build, the Python ABI and
  the compiler settings, and not the place of the checkout;
* importing the package (library, command line) builds and loads nothing,
  and the Python loops never touch the cache;
* a second checkout of the same source at another path loads the first
  one's build without compiling (it runs with no compiler on ``PATH``);
* concurrent first builds compile once, also after a killed build
  (``SKETCHODE_SLOW_TESTS=1``: that test compiles into an empty cache,
  about a minute).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sketchode import accel
from sketchode.accel import build

PKG = Path(__file__).resolve().parents[1] / "sketchode"
SLOW = os.environ.get("SKETCHODE_SLOW_TESTS", "").strip().lower() not in ("", "0", "false", "no")


def _run(code: str, env: dict, cwd, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SKETCHODE_LOOPS", "PYTHONPATH")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def _checkout(where: Path) -> Path:
    """A copy of the package at another path (as a second clone has it); returns the folder to put on sys.path."""
    shutil.copytree(PKG, where / "sketchode", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return where


# ---------------------------------------------------------------- the key


def test_cache_key_follows_source_and_torch_not_the_checkout(tmp_path):
    text = build.SOURCE.read_bytes()
    key = build.cache_key(text)
    assert len(key) == 64 and key == build.cache_key() == build.cache_key(text.decode("utf-8"))
    # two checkouts: the same text at two paths gives the same key, build folder and module name
    places = ("a/sketchode/accel/csrc", "b/elsewhere")
    for d in places:
        (tmp_path / d).mkdir(parents=True)
        (tmp_path / d / "fused_rk4.cpp").write_bytes(text)
    a, b = (build.cache_key((tmp_path / d / "fused_rk4.cpp").read_bytes()) for d in places)
    assert a == b == key
    assert build.build_dir(a) == build.build_dir(b) == build.cache_root() / key[:16]
    assert build.module_name(a) == f"sketchode_accel_{key[:16]}"
    assert str(PKG.parent) not in str(build.build_dir(key))
    # what does change it
    changed = {
        "source": build.cache_key(text + b"\n// one more comment\n"),
        "torch": build.cache_key(text, torch_build=build._torch_build().replace("torch ", "torch 9.9.9+")),
        "python": build.cache_key(text, python_abi="cpython-399 .cpython-399-x86_64-linux-gnu.so linux x86_64"),
        "compiler": build.cache_key(text, compiler=("cxx clang++",) + build._compiler()[1:]),
        "flags": build.cache_key(text, compiler=build._compiler()[:1] + ("cflags -O2 -fopenmp", "ldflags -fopenmp")),
    }
    assert key not in changed.values() and len(set(changed.values())) == len(changed)


def test_cache_root_is_overridable(monkeypatch, tmp_path):
    monkeypatch.setenv(build.ENV_DIR, str(tmp_path / "mine"))
    assert build.cache_root() == tmp_path / "mine"
    assert build.build_dir("ab" * 32) == tmp_path / "mine" / ("ab" * 8)
    assert not build.is_built("ab" * 32)
    monkeypatch.delenv(build.ENV_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert build.cache_root() == tmp_path / "xdg" / "sketchode" / "accel"


# ---------------------------------------------------------------- nothing at import


def test_importing_the_package_builds_and_loads_nothing(tmp_path):
    cache = tmp_path / "accel-cache"
    cache.mkdir()
    r = _run("""
        import json, sys
        import sketchode, sketchode.numerics.fused, sketchode.numerics.solvers, sketchode.models
        import sketchode.accel, sketchode.cli.main, sketchode.cli.bench, sketchode.training.fit
        from sketchode.accel import build
        print(json.dumps({"tried": build._state["tried"],
                          "ext": [m for m in sys.modules if m.startswith("sketchode_accel_")],
                          "cpp_extension": "torch.utils.cpp_extension" in sys.modules}))
        """, _env(SKETCHODE_ACCEL_DIR=cache), cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"tried": False, "ext": [], "cpp_extension": False}
    assert list(cache.iterdir()) == []
    assert "compiling" not in r.stderr


def test_python_loops_never_touch_the_cache(tmp_path):
    """``SKETCHODE_LOOPS=python``: a whole training step runs and the (empty) cache stays empty."""
    cache = tmp_path / "accel-cache"
    cache.mkdir()
    r = _run("""
        import torch
        from sketchode.accel import build
        from sketchode.data.sketch import prepare
        from sketchode.data.synthetic import digits
        from sketchode.models.full_sequence import SketchODE
        torch.manual_seed(0)
        m = SketchODE(d=8, l=4, G=10)
        m.loss(m.collate(prepare(digits(n_per_class=1, seed=0))[:3])).backward()
        assert not build._state["tried"]
        print("ok")
        """, _env(SKETCHODE_ACCEL_DIR=cache, SKETCHODE_LOOPS="python"), cwd=tmp_path, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr
    assert list(cache.iterdir()) == []


# ---------------------------------------------------------------- lock and PATH


def test_build_lock_is_exclusive_between_processes(tmp_path):
    pytest.importorskip("fcntl")
    lock = tmp_path / ".build.lock"
    probe = f"""
        import fcntl
        with open({str(lock)!r}, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                print("free")
            except BlockingIOError:
                print("held")
        """
    with build._file_lock(lock, tmp_path):
        assert _run(probe, _env(), tmp_path, 60).stdout.strip() == "held"
    assert _run(probe, _env(), tmp_path, 60).stdout.strip() == "free"


def test_ninja_on_path_only_during_the_build(monkeypatch):
    ninja = pytest.importorskip("ninja")
    monkeypatch.setattr(build.shutil, "which", lambda name: None)  # as if ninja were not on PATH
    before = os.environ.get("PATH")
    with build._ninja_on_path():
        assert os.environ["PATH"].split(os.pathsep)[0] == ninja.BIN_DIR
    assert os.environ.get("PATH") == before
    with pytest.raises(ZeroDivisionError):
        with build._ninja_on_path():
            1 / 0
    assert os.environ.get("PATH") == before


# ---------------------------------------------------------------- a second checkout

LOAD = """
    import json, os, sys, time
    t0 = time.perf_counter()
    import sketchode
    from sketchode import accel
    from sketchode.accel import build
    ext = accel.load()
    print(json.dumps({"package": os.path.dirname(sketchode.__file__), "seconds": time.perf_counter() - t0,
                      "library": getattr(ext, "__file__", None), "built_now": build._state["built"],
                      "error": accel.error()}))
    """


def _loaded(r: subprocess.CompletedProcess) -> dict:
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _no_compiler_env(tmp_path: Path, **extra) -> dict:
    empty = tmp_path / "no-compiler-bin"
    empty.mkdir(exist_ok=True)
    return _env(PATH=str(empty), **extra)  # no c++, no ninja: loading must not compile


def test_second_checkout_loads_the_first_ones_build(tmp_path):
    """Two copies of the package at two paths, one cache (this machine's): the second compiles nothing."""
    cache = build.cache_root()
    a, b = _checkout(tmp_path / "clone-a"), _checkout(tmp_path / "clone-b")
    first = _loaded(_run(LOAD, _env(PYTHONPATH=a, SKETCHODE_ACCEL_DIR=cache), tmp_path))
    if first["library"] is None:
        pytest.skip(f"the C++ loops cannot be built here: {first['error']}")
    assert first["package"] == str(a / "sketchode")
    lib = Path(first["library"])
    assert lib.parent == build.build_dir() and lib.is_file()
    mtime = lib.stat().st_mtime_ns
    second = _loaded(_run(LOAD, _no_compiler_env(tmp_path, PYTHONPATH=b, SKETCHODE_ACCEL_DIR=cache), tmp_path))
    assert second["package"] == str(b / "sketchode")
    assert second["error"] is None and second["library"] == str(lib) and not second["built_now"]
    assert lib.stat().st_mtime_ns == mtime
    assert second["seconds"] < 60  # importing torch and the .so; a compile takes longer and needs c++


@pytest.mark.skipif(not SLOW, reason="compiles into an empty cache (about a minute): set SKETCHODE_SLOW_TESTS=1")
def test_concurrent_first_builds_compile_once_then_no_checkout_compiles(tmp_path):
    if shutil.which(os.environ.get("CXX", "c++")) is None:
        pytest.skip("no C++ compiler")
    cache = tmp_path / "accel-cache"
    a, b, c = (_checkout(tmp_path / f"clone-{x}") for x in "abc")
    stale = cache / accel.cache_key()[:16]
    stale.mkdir(parents=True)
    (stale / "lock").touch()  # torch's lock file, as a build killed half-way leaves it: must not hang the next one
    procs = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(LOAD)], cwd=tmp_path, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=_env(PYTHONPATH=p, SKETCHODE_ACCEL_DIR=cache)) for p in (a, b)]
    outs = [p.communicate(timeout=900) for p in procs]
    runs = [_loaded(subprocess.CompletedProcess([], p.returncode, o, e)) for p, (o, e) in zip(procs, outs)]
    assert [r["built_now"] for r in runs].count(True) == 1, outs
    assert runs[0]["library"] == runs[1]["library"] is not None
    assert len(list(cache.glob("*/*.so"))) == 1
    third = _loaded(_run(LOAD, _no_compiler_env(tmp_path, PYTHONPATH=c, SKETCHODE_ACCEL_DIR=cache), tmp_path))
    assert third["library"] == runs[0]["library"] and not third["built_now"]
    marker = json.loads((Path(third["library"]).parent / build.MARKER).read_text())
    assert marker["key"] == accel.cache_key() and marker["module"] == build.module_name()


# ---------------------------------------------------------------- process-wide settings belong to the command line


def test_cli_threads_policy(monkeypatch):
    import torch

    from sketchode.cli import main as cli
    from sketchode.training.fit import sensible_threads

    assert cli.cli_threads(3) == 3
    with pytest.raises(ValueError, match="--threads"):
        cli.cli_threads(0)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(8)
        monkeypatch.setattr(cli, "_usable_cpus", lambda: 2)
        monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
        assert cli.cli_threads() == min(2, sensible_threads())  # quiet: one per free core, at most sensible_threads
        monkeypatch.setattr(cli.os, "getloadavg", lambda: (1.2, 1.0, 1.0))
        assert cli.cli_threads() == 1  # one core held by another process: one thread
        monkeypatch.setattr(cli.os, "getloadavg", lambda: (6.0, 6.0, 6.0))
        assert cli.cli_threads() == 1  # never fewer than one
        torch.set_num_threads(1)  # OMP_NUM_THREADS=1 or the caller's choice: never raised
        monkeypatch.setattr(cli.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
        assert cli.cli_threads() == 1
    finally:
        torch.set_num_threads(old)


def test_load_warning():
    from sketchode.cli.bench import load_warning

    assert load_warning([0.2, 0.3, 0.3], [1.9, 1.0, 0.5], threads=2, cpus=2) is None
    assert load_warning([1.1, 1.0, 1.0], [1.8, 1.2, 1.0], threads=1, cpus=2) is None  # one free core, one thread
    assert "not reliable" in load_warning([1.1, 1.0, 1.0], [2.0, 1.2, 1.0], threads=2, cpus=2)
    assert "4.00 after" in load_warning([0.1, 0.1, 0.1], [4.0, 2.0, 1.0], threads=1, cpus=2)
    assert load_warning(None, None, threads=2, cpus=2) is None


def test_library_leaves_process_settings_to_the_command_line(monkeypatch, capsys, one_thread):
    """``bench()`` and ``fit()`` neither tune the allocator nor keep a changed thread count; the commands do."""
    import torch

    from sketchode.cli import bench as bench_mod
    from sketchode.cli.main import main
    from sketchode.data.synthetic import digits
    from sketchode.numerics import fused
    from sketchode.training.configs import get_config
    from sketchode.training.fit import fit

    calls = []
    monkeypatch.setattr(fused, "keep_freed_memory", lambda *a: calls.append(a) or True)
    small = dict(d=8, l=4, batch=4, G=10, rounds=1, warmup=0, naive=False)
    r = bench_mod.bench(threads=2, loops="python", **small)
    assert r["threads"] == 2 and torch.get_num_threads() == 1  # for the measurement only
    assert set(r) >= {"load_before", "load_after", "cpus", "load_warning"}
    if r["load_before"] is not None:
        assert len(r["load_before"]) == len(r["load_after"]) == 3
    fit(get_config("tiny").build(), digits(n_per_class=1, seed=0)[:4], steps=1, progress=False, threads=2)
    assert torch.get_num_threads() == 1 and calls == []
    monkeypatch.setattr(bench_mod.os, "getloadavg", lambda: (7.5, 7.0, 7.0))  # a machine far busier than its cores
    assert main(["bench", "--json", "--d", "8", "--l", "4", "--batch", "4", "--G", "10", "--rounds", "1",
                 "--threads", "1", "--no-naive", "--loops", "python"]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out.strip().splitlines()[-1])
    assert res["load_before"] == [7.5, 7.0, 7.0] and "not reliable" in res["load_warning"]
    assert "warning" in err and "not reliable" in err
    assert len(calls) == 1 and torch.get_num_threads() == 1


def test_build_accel_command(capsys):
    from sketchode.cli.main import main

    if not accel.is_built():
        pytest.skip("the cache is cold here (the second-checkout test builds it when a compiler is present)")
    assert main(["build-accel", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["built_now"] is False and res["error"] is None
    assert res["build_dir"] == str(accel.build_dir()) and res["key"] == accel.cache_key()
    assert Path(res["module"]).parent == accel.build_dir()
