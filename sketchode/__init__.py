"""SketchODE from first principles.

The package behind *The SketchODE book*: a small PyTorch library for
continuous-time neural models of drawing (Das et al., ICLR 2022).

Modules map to the paper and to the book's chapters:

=========================  ===========================================  =========
module                     paper                                        chapter
=========================  ===========================================  =========
``sketchode.data.sketch``  4.4, appendix D (formats, time, resampling)  1
``sketchode.data.batching``appendix D (mini-batching, masks)            1
``sketchode.data.formats`` 5.1 (datasets and their file formats)        1
``sketchode.data.datasets``5.1 (loading, data root, splits)             1
``sketchode.data.synthetic``5.1 (embedded stand-in for VectorMNIST)     1
``sketchode.data.augment`` 4.6 (Perlin noise augmentation)              6
``sketchode.plot``         figures, rasterisation, SVG                  1-
=========================  ===========================================  =========
"""

__version__ = "0.1.0"

from sketchode import config  # noqa: E402,F401

__all__ = ["__version__", "config"]
