"""Deprecated: the export's bookkeeping lives in :mod:`diffusemix.export.folder` (the folder's files)
and :mod:`diffusemix.export.manifest` (the merge). This name imports, with a warning, for code written
before the move; it will go in a later version.
"""

import warnings

from .export.folder import MANIFEST_COLUMNS, MANIFEST_NAME  # noqa: F401
from .export.manifest import collect, merge_manifests  # noqa: F401

warnings.warn(
    "diffusemix.manifest is deprecated: use diffusemix.export.merge_manifests and diffusemix.export.folder",
    DeprecationWarning,
    stacklevel=2,
)
