"""Training: :func:`~sketchode.training.fit.fit` (section 5.1's recipe: AdamW, clipping, the cosine schedule with
decaying amplitude), atomic versioned checkpoints (:mod:`~sketchode.training.checkpoint`), the run log beside each
checkpoint (:mod:`~sketchode.training.runlog`) and the paper's named settings (:mod:`~sketchode.training.configs`).
"""
