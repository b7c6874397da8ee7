"""Numerics: the fixed-grid RK4 reference (:mod:`~sketchode.numerics.solvers`, 5.1; chapter 2) and the fused RK4
of periodic MLP fields with its exact hand-written backward (:mod:`~sketchode.numerics.fused`; chapter 8), whose
stage loops run in Python (the readable reference) or in C++ (:mod:`sketchode.accel`, the accelerator).
"""
