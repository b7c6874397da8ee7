"""The data layer: drawings, formats, datasets, augmentation (chapter 1)."""
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
