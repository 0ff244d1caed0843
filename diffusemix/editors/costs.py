"""What an Î costs with each instruction editor: operations, weights, and the
seconds measured on two machines. Data for the cost planner (diffusemix.cost)
and the README's editor table; pure functions, no torch.

Operations were counted by bench/bench_editors.py (torch's FlopCounterMode on
the real architectures built on the meta device; attention counted dense), at
the card's settings: FLUX.2 [klein] 4B (4 steps, one transformer pass a step),
Qwen-Image-Edit-2511 (40 steps, true CFG: two passes a step, the prompt and
the negative prompt each encoded with the image), FLUX.1 Kontext [dev] (28
steps, one pass). InstructPix2Pix (100 steps, the 3-way guidance batch at 256
px) is there for scale: it is the paper's editor.

Seconds were measured with random weights (speed does not depend on them):
on the project's 2-core CPU (bfloat16, FLUX.2 [klein] 4B at 256 px, one part
at a time) and on one NVIDIA H200 (bfloat16, through the editors' ``edit()``,
bench/bench_editors_gpu.py, 2026-12-04).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "EditorFlops",
    "EDITOR_FLOPS",
    "EDITOR_PARAMS",
    "MEASURED_SECONDS",
    "BYTES_PER_PARAM",
    "flops_per_image",
    "weights_gb",
]


@dataclass(frozen=True)
class EditorFlops:
    """Floating-point operations of one Î's parts at one edit size.

    Attributes:
        text: one text-encoder pass for an Î (Qwen-Image-Edit: the prompt and
            the negative prompt, both with the image; FLUX: the prompt, which
            the editors encode once per distinct prompt, so across a dataset
            this part nearly vanishes for them).
        step: one denoising step, all its transformer passes.
        passes: transformer passes per step (2 with true classifier-free guidance).
        vae_encode: the reference image through the VAE encoder.
        vae_decode: Î through the VAE decoder.
    """

    text: float
    step: float
    passes: int
    vae_encode: float
    vae_decode: float

    def total(self, steps: int, *, text_passes: float = 1.0) -> float:
        """Operations for one Î at ``steps`` steps; ``text_passes`` is the share
        of a text-encoder pass the Î pays (1 when nothing is cached)."""
        return text_passes * self.text + steps * self.step + self.vae_encode + self.vae_decode


#: (editor, edit size) -> operations per part; bench/bench_editors.py, 2026-12-04.
EDITOR_FLOPS: dict[tuple[str, int], EditorFlops] = {
    ("flux2-klein", 256): EditorFlops(4.2734e12, 6.6288e12, 1, 2.7326e11, 6.2245e11),
    ("flux2-klein", 512): EditorFlops(4.2734e12, 1.7744e13, 1, 1.1188e12, 2.5156e12),
    ("flux2-klein", 1024): EditorFlops(4.2734e12, 7.6703e13, 1, 4.8875e12, 1.0475e13),
    ("qwen-image-edit", 256): EditorFlops(1.0184e13, 2.0797e13, 2, 4.3787e11, 7.0600e11),
    ("qwen-image-edit", 512): EditorFlops(1.0184e13, 6.9352e13, 2, 1.7708e12, 2.8433e12),
    ("qwen-image-edit", 1024): EditorFlops(1.0184e13, 3.3315e14, 2, 7.3925e12, 1.1683e13),
    ("flux-kontext", 256): EditorFlops(4.8580e12, 1.3974e13, 1, 2.7295e11, 6.2230e11),
    ("flux-kontext", 512): EditorFlops(4.8580e12, 3.7661e13, 1, 1.1176e12, 2.5150e12),
    ("flux-kontext", 1024): EditorFlops(4.8580e12, 1.6546e14, 1, 4.8826e12, 1.0472e13),
    # the paper's editor, at the paper's size (its text encoder, CLIP-L on 77 tokens, is ~0.01 TFLOP)
    ("instruct-pix2pix", 256): EditorFlops(0.0, 5.4039e11, 3, 2.7272e11, 6.2219e11),
}

#: Parameters per part (counted on the meta device) of each editor's default checkpoint.
EDITOR_PARAMS: dict[str, dict[str, int]] = {
    "flux2-klein": {"transformer": 3_875_544_576, "text_encoder": 4_022_468_096, "vae": 84_046_115},
    "qwen-image-edit": {"transformer": 20_430_401_088, "text_encoder": 8_292_166_656, "vae": 126_892_531},
    "flux-kontext": {"transformer": 11_901_408_320, "text_encoder": 4_885_371_136, "vae": 83_819_683},
}

BYTES_PER_PARAM: dict[str, int] = {"float32": 4, "bfloat16": 2, "float16": 2}

#: Seconds measured (random weights). Keys: (editor, device, edit size, batch size).
#: CPU: the project's 2-core x86 machine, 2 threads, bfloat16; the parts of one
#: Î added up (transformer step 51.8 s, text encoder 43.4 s, VAE encode 2.2 s,
#: decode 4.6 s; peak resident 9.0 GB with one part loaded at a time); the
#: text encoder counted once. H200: through ``edit()``, bfloat16, the text
#: encoder cached (the bench's warm-up call encodes the prompts).
MEASURED_SECONDS: dict[tuple[str, str, int, int], float] = {
    ("flux2-klein", "cpu-2core", 256, 1): 257.0,
    ("flux2-klein", "h200", 512, 1): 0.31,
    ("flux2-klein", "h200", 512, 4): 0.25,
    ("flux2-klein", "h200", 1024, 1): 1.01,
    ("flux2-klein", "h200", 1024, 4): 0.98,
    ("qwen-image-edit", "h200", 512, 1): 11.99,
    ("qwen-image-edit", "h200", 1024, 1): 31.94,
    ("flux-kontext", "h200", 512, 1): 2.81,
    ("flux-kontext", "h200", 512, 4): 2.74,
    ("flux-kontext", "h200", 1024, 1): 10.81,
    ("flux-kontext", "h200", 1024, 4): 10.70,
}


def flops_per_image(editor: str, edit_size: int, *, steps: int, text_passes: float = 1.0) -> float:
    """Operations for one Î with ``editor`` at ``edit_size`` px and ``steps`` steps.

    Sizes between the counted ones (256, 512, 1024) are interpolated on the
    number of image tokens (each part scales close to linearly in them at
    these sizes; attention makes it a little more than linear above 512).

    Raises:
        ValueError: an editor without counts, or a size outside 256-1024.
    """
    sizes = sorted(s for e, s in EDITOR_FLOPS if e == editor)
    if not sizes:
        known = sorted({e for e, _ in EDITOR_FLOPS})
        raise ValueError(f"no operation counts for editor {editor!r}; known: {', '.join(known)}")
    if edit_size in sizes:
        return EDITOR_FLOPS[(editor, edit_size)].total(steps, text_passes=text_passes)
    if not sizes[0] <= edit_size <= sizes[-1]:
        raise ValueError(f"edit_size {edit_size} is outside the counted sizes {sizes[0]}-{sizes[-1]} for {editor}")
    lo = max(s for s in sizes if s < edit_size)
    hi = min(s for s in sizes if s > edit_size)
    w = (edit_size**2 - lo**2) / (hi**2 - lo**2)
    a = EDITOR_FLOPS[(editor, lo)].total(steps, text_passes=text_passes)
    b = EDITOR_FLOPS[(editor, hi)].total(steps, text_passes=text_passes)
    return a + w * (b - a)


def weights_gb(editor: str, dtype: str) -> float:
    """Gigabytes (1e9 bytes) of the default checkpoint's weights in ``dtype``.

    Raises:
        ValueError: an unknown editor or dtype.
    """
    if editor not in EDITOR_PARAMS:
        raise ValueError(f"no parameter counts for editor {editor!r}; known: {', '.join(sorted(EDITOR_PARAMS))}")
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"dtype must be one of {', '.join(BYTES_PER_PARAM)}; got {dtype!r}")
    return sum(EDITOR_PARAMS[editor].values()) * BYTES_PER_PARAM[dtype] / 1e9


# ---------------------------------------------------------------------------
# the planner's figures for an instruction editor (diffusemix.cost.plan_cost)

#: What the stored seconds were measured on, by the device kind a run uses them for.
MEASURED_ON = {
    "cuda": "for this editor on an NVIDIA H200 (bfloat16, random weights, through edit(), 2026-12-04), not this GPU",
    "cpu": "for FLUX.2 [klein] 4B on the project's 2-core x86 CPU (bfloat16, 2 threads, random weights), not this"
    " machine",
}
#: float32 / bfloat16 time on the project's CPU, measured for InstructPix2Pix's UNet (6.59 s / 3.43 s a step,
#: diffusemix.cost.STORED_CPU): the CPU rate below was measured in bfloat16 only.
CPU_FLOAT32_SLOWDOWN = 6.59 / 3.43


def _interpolated(editor: str, edit_size: int, part: str) -> float:
    """One part's operations (``text``, ``step``, ``vae``: encode + decode) at ``edit_size``,
    interpolated on the image area between the counted sizes."""
    sizes = sorted(s for e, s in EDITOR_FLOPS if e == editor)
    if not sizes:
        raise ValueError(f"no operation counts for editor {editor!r}")

    def at(size: int) -> float:
        f = EDITOR_FLOPS[(editor, size)]
        return {"text": f.text, "step": f.step, "vae": f.vae_encode + f.vae_decode}[part]

    if edit_size in sizes:
        return at(edit_size)
    if not sizes[0] <= edit_size <= sizes[-1]:  # outside the counts: scaled by area from the nearest
        near = sizes[0] if edit_size < sizes[0] else sizes[-1]
        return at(near) * (1.0 if part == "text" else (edit_size / near) ** 2)
    lo = max(s for s in sizes if s < edit_size)
    hi = min(s for s in sizes if s > edit_size)
    w = (edit_size**2 - lo**2) / (hi**2 - lo**2)
    return at(lo) + w * (at(hi) - at(lo))


def operations(editor: str, edit_size: int, *, steps: int, passes: int | None = None) -> tuple[float, float]:
    """(operations of one denoising step, operations fixed per Î) for ``editor`` at ``edit_size``.

    ``passes``: transformer passes a step when it differs from the counted one (Qwen-Image-Edit's
    true CFG off: 1 instead of 2). The fixed part is the VAE (encode + decode) and, for
    Qwen-Image-Edit, its text encoder (it reads the image, so once per Î); the FLUX editors
    encode each distinct instruction once for a whole run, so their text encoder is left out.
    """
    counted = EDITOR_FLOPS[(editor, min(s for e, s in EDITOR_FLOPS if e == editor))].passes
    step = _interpolated(editor, edit_size, "step") * ((passes or counted) / counted)
    fixed = _interpolated(editor, edit_size, "vae")
    if editor == "qwen-image-edit":
        fixed += _interpolated(editor, edit_size, "text") * ((passes or counted) / counted)
    return step, fixed


def _rate(editor: str, kind: str, edit_size: int = 1024) -> tuple[float, str]:
    """Operations per second measured for ``editor`` on a device of ``kind`` (and what it was).

    On a GPU, the measurement at batch 1 nearest to ``edit_size`` (a GPU is less busy at small sizes:
    Qwen-Image-Edit ran 1.8x fewer operations a second at 512 px than at 1024 px on the H200)."""
    if kind == "cuda":
        runs = sorted((abs(size - edit_size), -size, size, s) for (e, where, size, batch), s in MEASURED_SECONDS.items()
                      if e == editor and where == "h200" and batch == 1)
        if not runs:
            raise ValueError(f"no GPU measurement for {editor!r}")
        size, seconds = runs[0][2], runs[0][3]
        step, fixed = operations(editor, size, steps=1)
        card_steps = {"flux2-klein": 4, "qwen-image-edit": 40, "flux-kontext": 28}[editor]
        return (card_steps * step + fixed) / seconds, f"{seconds:g} s per Î at {size} px"
    # the CPU: FLUX.2 [klein] 4B measured part by part at 256 px (text encoder included once)
    seconds = MEASURED_SECONDS[("flux2-klein", "cpu-2core", 256, 1)]
    return flops_per_image("flux2-klein", 256, steps=4) / seconds, f"{seconds:g} s per Î at 256 px"


def gpu_seconds_per_image(editor: str, edit_size: int, *, steps: int, passes: int | None = None) -> float:
    """Seconds per Î on an H200 (bfloat16) at ``edit_size`` and ``steps``: the editor's counted
    operations at the rate measured for it there (a first guess for a GPU's time, e.g. ZeroGPU's
    duration, before anything was timed on it)."""
    step, fixed = operations(editor, edit_size, steps=steps, passes=passes)
    rate, _ = _rate(editor, "cuda", edit_size)
    return (fixed + steps * step) / rate
