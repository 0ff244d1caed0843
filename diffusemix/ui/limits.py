"""The app's limits, each stated once: a shared server takes less than the library does.

The page states them from here, and so does the README; the library's own limits are
:mod:`diffusemix.limits` (the seed's range, the largest output side).
"""

from __future__ import annotations

from diffusemix.archive import MAX_IMAGES as MAX_ZIP_IMAGES
from diffusemix.archive import MAX_UNPACKED_MB as MAX_ZIP_UNPACKED_MB
from diffusemix.limits import MAX_SEED

__all__ = [
    "MAX_SEED",
    "MAX_UPLOAD_MB",
    "MIN_SIZE",
    "MAX_SIZE",
    "MAX_IMAGE_PIXELS",
    "MAX_ZIP_IMAGES",
    "MAX_ZIP_UNPACKED_MB",
    "MAX_IMAGE_MB",
    "MAX_ZIP_PIXELS",
    "MAX_EXPORT_OUTPUTS",
    "MAX_EXPORT_OUTPUT_MB",
    "MAX_EXPLORE_PROMPTS",
    "MAX_LAB_IMAGES",
    "MAX_LAB_PROMPTS",
    "MAX_SEAM",
    "MAX_STEPS",
    "MAX_GUIDANCE",
    "MAX_IMAGE_GUIDANCE",
    "export_limits_text",
    "app_limits_text",
]

#: Largest upload of any kind (passed to launch(max_file_size=...)).
MAX_UPLOAD_MB = 200
#: Output side S offered by the size sliders (the library takes 8..4096).
MIN_SIZE, MAX_SIZE = 64, 512
#: Decoded pixels one uploaded image may have (read from its header before decoding): 40 MP.
MAX_IMAGE_PIXELS = 40_000_000
#: Bytes one image of a zip may unpack to (unpacking streams and stops there).
MAX_IMAGE_MB = 64
#: Decoded pixels of all the images of one zip (read from headers before anything is decoded): 1 GP.
MAX_ZIP_PIXELS = 1_000_000_000
#: The output budget of one Batch export (one upload): augmented images it may make (images x prompts
#: x copies), and megabytes of images, counted uncompressed (S x S x 3 bytes an image; with the saved
#: stages six images a sample). A 71 KB zip once asked for 2,000 outputs at 512 px: 293 s of the export
#: slot, a 438 MB zip and about 880 MB of temporary files.
MAX_EXPORT_OUTPUTS = 2_000
MAX_EXPORT_OUTPUT_MB = 1024
#: Prompts at once in Explore, and images and prompts in the Prompt lab.
MAX_EXPLORE_PROMPTS = 12
MAX_LAB_IMAGES = 8
MAX_LAB_PROMPTS = 12
#: The sliders' ends for the seam and the editor's settings (the library takes more).
MAX_SEAM = 64
MAX_STEPS = 150
MAX_GUIDANCE = 20.0
MAX_IMAGE_GUIDANCE = 5.0


def export_limits_text() -> str:
    """The Batch export's limits in one sentence: the page says it, and the README says the same words
    (``tests/test_readme_limits.py`` holds them equal)."""
    return (f"{MAX_UPLOAD_MB} MB upload, {MAX_ZIP_IMAGES:,} images, {MAX_ZIP_UNPACKED_MB:,} MB unpacked"
            f" ({MAX_IMAGE_MB} MB per image), {MAX_IMAGE_PIXELS // 10**6} MP per image and"
            f" {MAX_ZIP_PIXELS // 10**6:,} MP per zip (read from the headers before decoding),"
            f" {MAX_EXPORT_OUTPUTS:,} augmented images and {MAX_EXPORT_OUTPUT_MB:,} MB of images per run (counted"
            " uncompressed, S x S x 3 bytes an image; saved stages count five more a sample)")


def app_limits_text() -> str:
    """Explore's and the Prompt lab's limits in one sentence (the page's sliders, and the README)."""
    return (f"output side {MIN_SIZE}-{MAX_SIZE} px, uploads up to {MAX_IMAGE_PIXELS // 10**6} MP, up to"
            f" {MAX_EXPLORE_PROMPTS} prompts in Explore, {MAX_LAB_IMAGES} images x {MAX_LAB_PROMPTS} prompts in the"
            " Prompt lab")
