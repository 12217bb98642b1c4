"""Pictures of the embedding space: 2-D maps of the gallery, pair-score histograms, ROC and DET curves, and
before/after maps of a fine-tune (``faceid viz``; the server's ``/map`` page draws the same map).

:mod:`faceid.viz.report` writes the files; :mod:`faceid.viz.maps` and :mod:`faceid.viz.curves` compute what they
show (also served as JSON); :mod:`faceid.viz.plots` draws the PNGs with matplotlib, imported only there.
"""
