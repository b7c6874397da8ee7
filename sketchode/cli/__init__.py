"""The command line: ``python -m sketchode`` (:mod:`sketchode.cli.main`), the step benchmark
(:mod:`sketchode.cli.bench`) and the GPU campaign (:mod:`sketchode.cli.campaign`).

The command line may import the library and the book wing; nothing imports it.
Process-wide settings (thread counts, the allocator) are made here, not by library calls.
"""
