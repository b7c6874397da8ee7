"""The C++ accelerator: the fused RK4 stage loops of :mod:`sketchode.numerics.fused` in C++ (chapter 8).

``csrc/fused_rk4.cpp`` is a port of the two Python stage loops of
:mod:`sketchode.numerics.fused`; :mod:`sketchode.accel.build` compiles it with
:func:`torch.utils.cpp_extension.load` and loads it:

* **once per machine**: into a cache (:func:`cache_root`, ``$SKETCHODE_ACCEL_DIR``
  to move it) keyed by :func:`cache_key`, the sha256 of the source text, the
  torch build, the Python ABI and the compiler settings, never by the
  checkout's path: a second checkout or clone of the same source reuses the
  build;
* **lazily**: nothing is built or loaded at import; the first fused solve that
  runs the C++ loops calls :func:`load` (``SKETCHODE_LOOPS`` and
  :func:`sketchode.numerics.fused.loops` choose the loops), and
  ``python -m sketchode build-accel`` builds on purpose;
* **without process-wide settings**: no thread counts, no allocator tuning,
  and ``PATH`` only for the duration of a build that needs the ``ninja`` wheel.

This layer imports nothing else of the package.
"""

from sketchode.accel.build import (
    ENV_DIR,
    SOURCE,
    build_dir,
    cache_key,
    cache_root,
    error,
    is_built,
    load,
    module_name,
)

__all__ = ["ENV_DIR", "SOURCE", "cache_root", "cache_key", "build_dir", "module_name", "is_built", "load", "error"]
