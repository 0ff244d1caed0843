"""Fractal images: the F of A = (1 − λ) H + λ F.

Two rooms, readable on their own:

- :mod:`.loader`: :class:`FractalSet`, a loader for any folder of images (the
  shipped set, or the PixMix / IPMix fractal sets), and
  :func:`default_fractal_dir`. This is what the engine, the exporter and the
  app use.
- :mod:`.generator`: :func:`make_fractal`, :func:`fractal_seed` and
  :func:`write_fractal_set`, the tool that made ``assets/fractals``
  (``scripts/make_fractals.py``, ``python -m diffusemix fractals``), drawing
  with :mod:`.chaos` (``ifs``, ``flame``) and :mod:`.escape` (``mandelbrot``,
  ``julia``, ``newton``), coloured by :mod:`.colour`.
"""

from __future__ import annotations

from .generator import KINDS, FractalKind, fractal_seed, make_fractal, write_fractal_set
from .loader import FractalSet, default_fractal_dir

__all__ = [
    "FractalKind",
    "KINDS",
    "make_fractal",
    "fractal_seed",
    "write_fractal_set",
    "default_fractal_dir",
    "FractalSet",
]
