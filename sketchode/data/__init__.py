"""The data layer: drawings, formats, datasets, batching, augmentation (chapter 1).

=====================================  ==========================================
``Sketch``, resampling                 :mod:`sketchode.data.sketch` (4.4, app. D)
``collate_full``, ``collate_strokes``  :mod:`sketchode.data.batching` (app. D)
``load``, ``split``, ``subset``        :mod:`sketchode.data.datasets` (5.1, 5.3)
readers of every file format           :mod:`sketchode.data.formats` (5.1)
``perlin``, ``gaussian_jitter``        :mod:`sketchode.data.augment` (4.6)
``digits``, ``letters`` generator      :mod:`sketchode.data.synthetic` (5.1)
=====================================  ==========================================
"""
from sketchode.data.augment import augment_copies, gaussian_jitter, perlin, perlin2d  # noqa: F401
from sketchode.data.batching import FullBatch, StrokeBatch, collate_full, collate_strokes  # noqa: F401
from sketchode.data.datasets import available, fetch, load, split, split_of, subset  # noqa: F401
from sketchode.data.sketch import (  # noqa: F401
    JOIN_POINTS,
    T_DEFAULT,
    Sketch,
    arc_length_time,
    interp_linear,
    interp_pen,
    prepare,
    resample_full,
    resample_stroke,
    rescale_time,
    strictly_increasing,
    uniform_grid,
)
