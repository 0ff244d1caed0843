"""The export's bookkeeping now lives in :mod:`diffusemix.export.manifest`.

This name stays importable: ``diffusemix.manifest`` *is* that module (the
same object, so its names, state and monkeypatches are shared).
"""

import sys

from .export import manifest as _manifest

sys.modules[__name__] = _manifest
