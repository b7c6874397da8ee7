"""Evaluation: reconstruction scores (:mod:`~sketchode.evaluation.scores`: test loss, chamfer and its random-pair
scale, retrieval, recognition; section 5.2, chapter 9), the recognition CNN (:mod:`~sketchode.evaluation.recognition`)
and learning curves from run logs (:mod:`~sketchode.evaluation.curves`).
"""
