"""rvoskit: a toolkit for referring video object segmentation (RVOS) research.

Stages (each a library function first, a ``rvoskit`` CLI command second):
convert -> tracks generate -> pseudolabel -> corrupt -> train -> score -> eval, around one
common on-disk format (:mod:`rvoskit.format`).
"""

__version__ = "0.1.0"
