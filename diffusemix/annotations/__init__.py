"""Detection and segmentation annotations carried through DiffuseMix (issue 23).

The mixing keeps geometry (an instruction edit keeps the layout, H joins I and
Î at the same pixels, the fractal blend moves nothing), so an object's box or
mask on I is its box or mask on Î, H and A: only ``prepare``'s resize and crop
move it. This package reads annotations, applies that geometry with the exact
arithmetic of :func:`diffusemix.images.prepare`, records which side of the
seam each object lies on, and writes the result in the input's format.

Modules, in the order data flows:

* ``types``: Category(ies), ObjectAnnotation, ImageAnnotation, SemanticMask, Rle
* ``issues``: AnnotationError and the skip list (errors.jsonl)
* ``coco``, ``yolo``, ``masks``: read (checked) and write each format; ``detect``: ``auto``
* ``geometry``: resize / center-crop of boxes, polygons and masks; kept / clipped / dropped
* ``seam``: per object, the share of its area on the Î side; ``best_layout``
* ``targets``: torchvision detection / segmentation targets, 🤗 ``objects``
* ``draw``: boxes and outlines on an image, for the app
* ``export_step``: ``AnnotationOptions`` (the ``--task``/``--annotations`` settings) and the per-image step
  the exporter calls (``diffusemix.export.annotated`` and ``.annotation_writer`` are the exporter's hooks)

Imports are lazy: nothing heavy loads until a name is used; pycocotools
(the ``detection`` extra) only for COCO masks and areas.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    # types
    "Category": "types",
    "Categories": "types",
    "Rle": "types",
    "ObjectAnnotation": "types",
    "ImageAnnotation": "types",
    "SemanticMask": "types",
    "AnnotatedDataset": "dataset",
    "SemanticDataset": "dataset",
    "MaskPair": "dataset",
    # errors
    "AnnotationError": "issues",
    "AnnotationIssue": "issues",
    # reading and writing
    "read_annotations": "detect",
    "detect_format": "detect",
    "read_coco": "coco",
    "CocoWriter": "coco",
    "read_yolo": "yolo",
    "yolo_label_path": "yolo",
    "write_yolo_label": "yolo",
    "write_data_yaml": "yolo",
    "read_mask_pairs": "masks",
    "load_mask": "masks",
    "write_mask": "masks",
    "write_classes": "masks",
    # geometry and the seam
    "transform_annotation": "geometry",
    "transform_semantic": "geometry",
    "TransformResult": "geometry",
    "ObjectOutcome": "geometry",
    "generated_share": "seam",
    "generated_shares": "seam",
    "best_layout": "seam",
    # training and drawing
    "detection_target": "targets",
    "segmentation_target": "targets",
    "hf_objects": "targets",
    "draw_annotations": "draw",
    "draw_semantic": "draw",
    # the exporter's settings and per-image step
    "AnnotationOptions": "export_step",
    "SampleAnnotation": "export_step",
    "plan_annotations": "export_step",
    "TASKS": "export_step",
    "annotate_sample": "export_step",
    "annotate_semantic_sample": "export_step",
    "check_image_size": "export_step",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals(), __all__)
