"""What the model cards say about the instruction-following editors' weights.

One :class:`ModelCard` per checkpoint: its Hub id, the diffusers pipeline class
that loads it, the defaults its card gives (steps, guidance, resolution), and
the licence of its weights with whether commercial use is allowed. Every fact
names its source (checked 2026-12-04; see the list in each card). Parameter
counts are counted on the real architectures built from their configs on the
meta device (bench/bench_editors.py).

A licence belongs to the weights, not to the pipeline class: FLUX.2 [klein] 4B
and 9B share a pipeline and differ in licence. :func:`card_for` therefore
recognises a local folder by its transformer's shape, and answers ``None`` (the
licence unknown) for weights it does not know; callers treat an unknown licence
as not cleared for commercial use.

Nothing here imports torch or touches the network.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "WeightsLicence",
    "ModelCard",
    "MODEL_CARDS",
    "APACHE_2",
    "FLUX_NON_COMMERCIAL",
    "FLUX1_DEV_NON_COMMERCIAL",
    "MIT_ON_STABLE_DIFFUSION",
    "CREATIVEML_OPENRAIL_M",
    "card_for",
    "card_by_id",
]


@dataclass(frozen=True)
class WeightsLicence:
    """The licence of a model's weights.

    Attributes:
        name: the licence's name as its model card gives it.
        url: where its text is.
        commercial_use: whether the weights may be used commercially (the
            augmented dataset is made with the weights, so a non-commercial
            licence must be accepted explicitly).
        note: what else matters (e.g. what the licence says about outputs).
    """

    name: str
    url: str
    commercial_use: bool
    note: str = ""


APACHE_2 = WeightsLicence(
    name="Apache-2.0",
    url="https://www.apache.org/licenses/LICENSE-2.0",
    commercial_use=True,
)

FLUX_NON_COMMERCIAL = WeightsLicence(
    name="FLUX Non-Commercial License",
    url="https://github.com/black-forest-labs/flux2/blob/main/model_licenses/LICENSE-FLUX-NON-COMMERICAL",
    commercial_use=False,
    note="weights for non-commercial use only; a commercial licence is sold by Black Forest Labs",
)

FLUX1_DEV_NON_COMMERCIAL = WeightsLicence(
    name="FLUX.1 [dev] Non-Commercial License",
    url="https://huggingface.co/black-forest-labs/FLUX.1-Kontext-dev/blob/main/LICENSE.md",
    commercial_use=False,
    note=(
        "the weights are for non-commercial use; the card says generated outputs may be used for personal,"
        " scientific and commercial purposes as the licence describes"
    ),
)


CREATIVEML_OPENRAIL_M = WeightsLicence(
    name="CreativeML Open RAIL-M",
    url="https://huggingface.co/spaces/CompVis/stable-diffusion-license",
    commercial_use=True,
    note="commercial use allowed under the use-based restrictions of its Attachment A",
)

MIT_ON_STABLE_DIFFUSION = WeightsLicence(
    name="MIT (fine-tuned from Stable Diffusion v1.5)",
    url="https://github.com/timothybrooks/instruct-pix2pix/blob/main/LICENSE",
    commercial_use=True,
    note=(
        "the authors' LICENSE: MIT, and the checkpoints, fine-tuned from Stable Diffusion, may carry its"
        " restrictions (CreativeML Open RAIL-M: commercial use allowed, with use-based restrictions)"
    ),
)


@dataclass(frozen=True)
class ModelCard:
    """Facts about one checkpoint, each from its model card or its code.

    Attributes:
        hub_id: the Hugging Face Hub id.
        title: the model's name as its authors write it.
        editor: the diffusemix editor that runs it.
        pipeline: the diffusers class named in its ``model_index.json``.
        steps: denoising steps the card uses.
        guidance: the guidance value the card uses (``guidance_scale`` for
            FLUX, ``true_cfg_scale`` for Qwen-Image-Edit); ``None`` when the
            model is guidance-distilled and ignores it.
        edit_size: the side of the square the card's resolution amounts to
            (the instruction models work near 1 megapixel); ``None`` for the
            Stable Diffusion editors, which edit at the recipe's size.
        licence: the licence of the weights.
        transformer_params: parameters of the denoising transformer.
        total_params: parameters of the whole pipeline (text encoder, transformer, VAE).
        signature: transformer config values that tell this checkpoint apart
            from its siblings (used to recognise a local folder).
        sources: where each fact comes from.
    """

    hub_id: str
    title: str
    editor: str
    pipeline: str
    steps: int
    guidance: float | None
    edit_size: int | None
    licence: WeightsLicence
    transformer_params: float
    total_params: float
    signature: dict[str, Any] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """JSON-able facts for manifests and the dry run."""
        return {
            "hub_id": self.hub_id,
            "title": self.title,
            "pipeline": self.pipeline,
            "licence": self.licence.name,
            "licence_url": self.licence.url,
            "commercial_use": self.licence.commercial_use,
            "card_steps": self.steps,
            "card_guidance": self.guidance,
            "transformer_params_b": round(self.transformer_params / 1e9, 2),
            "total_params_b": round(self.total_params / 1e9, 2),
        }


_KLEIN_SOURCES = (
    "https://github.com/black-forest-labs/flux2 README (model table: licences, step/guidance distillation)",
    "https://huggingface.co/black-forest-labs/FLUX.2-klein-4B model_index.json (Flux2KleinPipeline, is_distilled)",
    "diffusers scripts/convert_flux2_to_diffusers.py (klein-4b / klein-9b transformer configs)",
    "diffusers tests/pipelines/flux2/test_pipeline_flux2_klein.py (klein-4B: 4 steps, guidance 1.0)",
)
_QWEN_SOURCES = (
    "https://github.com/QwenLM/Qwen-Image README (Quick Start: QwenImageEditPlusPipeline, 40 steps,"
    " true_cfg_scale 4.0, negative prompt ' ', guidance_scale 1.0)",
    "https://huggingface.co/Qwen/Qwen-Image-Edit-2509 (License: apache-2.0)",
    "https://build.nvidia.com/qwen/qwen-image-edit (covers 2509 and 2511: Apache 2.0, commercial use)",
    "diffusers QwenImageEditPlusPipeline 0.42.1 (VAE_IMAGE_SIZE = 1024*1024; CONDITION_IMAGE_SIZE = 384*384)",
)

#: Known checkpoints. Parameter counts: bench/bench_editors.py on the meta device.
MODEL_CARDS: dict[str, ModelCard] = {
    card.hub_id: card
    for card in (
        ModelCard(
            hub_id="black-forest-labs/FLUX.2-klein-4B",
            title="FLUX.2 [klein] 4B",
            editor="flux2-klein",
            pipeline="Flux2KleinPipeline",
            steps=4,
            guidance=None,
            edit_size=1024,
            licence=APACHE_2,
            transformer_params=3.876e9,
            total_params=7.982e9,
            signature={"num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24},
            sources=_KLEIN_SOURCES,
        ),
        ModelCard(
            hub_id="black-forest-labs/FLUX.2-klein-base-4B",
            title="FLUX.2 [klein] 4B Base",
            editor="flux2-klein",
            pipeline="Flux2KleinPipeline",
            steps=50,
            guidance=4.0,
            edit_size=1024,
            licence=APACHE_2,
            transformer_params=3.876e9,
            total_params=7.982e9,
            signature={"num_layers": 5, "num_single_layers": 20, "num_attention_heads": 24},
            sources=_KLEIN_SOURCES,
        ),
        ModelCard(
            hub_id="black-forest-labs/FLUX.2-klein-9B",
            title="FLUX.2 [klein] 9B",
            editor="flux2-klein",
            pipeline="Flux2KleinPipeline",
            steps=4,
            guidance=None,
            edit_size=1024,
            licence=FLUX_NON_COMMERCIAL,
            transformer_params=9.079e9,
            total_params=17.353e9,
            signature={"num_layers": 8, "num_single_layers": 24, "num_attention_heads": 32},
            sources=_KLEIN_SOURCES,
        ),
        ModelCard(
            hub_id="Qwen/Qwen-Image-Edit-2511",
            title="Qwen-Image-Edit-2511",
            editor="qwen-image-edit",
            pipeline="QwenImageEditPlusPipeline",
            steps=40,
            guidance=4.0,
            edit_size=1024,
            licence=APACHE_2,
            transformer_params=20.430e9,
            total_params=28.849e9,
            signature={"num_layers": 60, "num_attention_heads": 24},
            sources=_QWEN_SOURCES,
        ),
        ModelCard(
            hub_id="Qwen/Qwen-Image-Edit-2509",
            title="Qwen-Image-Edit-2509",
            editor="qwen-image-edit",
            pipeline="QwenImageEditPlusPipeline",
            steps=40,
            guidance=4.0,
            edit_size=1024,
            licence=APACHE_2,
            transformer_params=20.430e9,
            total_params=28.849e9,
            signature={"num_layers": 60, "num_attention_heads": 24},
            sources=_QWEN_SOURCES,
        ),
        ModelCard(
            hub_id="timbrooks/instruct-pix2pix",
            title="InstructPix2Pix",
            editor="instruct-pix2pix",
            pipeline="StableDiffusionInstructPix2PixPipeline",
            steps=100,
            guidance=None,
            edit_size=None,
            licence=MIT_ON_STABLE_DIFFUSION,
            transformer_params=0.860e9,  # the UNet (8 input channels)
            total_params=1.066e9,
            sources=(
                "https://github.com/timothybrooks/instruct-pix2pix LICENSE (MIT; checkpoints fine-tuned from Stable"
                " Diffusion, whose licence may add restrictions)",
                "diffusers StableDiffusionInstructPix2PixPipeline 0.42.1 (num_inference_steps=100 default)",
            ),
        ),
        ModelCard(
            hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
            title="Stable Diffusion v1.5",
            editor="img2img",
            pipeline="StableDiffusionPipeline",
            steps=50,
            guidance=7.5,
            edit_size=None,
            licence=CREATIVEML_OPENRAIL_M,
            transformer_params=0.860e9,  # the UNet
            total_params=1.066e9,
            sources=("Stable Diffusion v1 weights: CreativeML Open RAIL-M (the CompVis/stable-diffusion licence)",),
        ),
        ModelCard(
            hub_id="black-forest-labs/FLUX.1-Kontext-dev",
            title="FLUX.1 Kontext [dev]",
            editor="flux-kontext",
            pipeline="FluxKontextPipeline",
            steps=28,
            guidance=2.5,
            edit_size=1024,
            licence=FLUX1_DEV_NON_COMMERCIAL,
            transformer_params=11.901e9,
            total_params=16.871e9,
            signature={"num_layers": 19, "num_single_layers": 38, "num_attention_heads": 24},
            sources=(
                "https://huggingface.co/black-forest-labs/FLUX.1-Kontext-dev README (12B, FluxKontextPipeline,"
                " guidance_scale=2.5, flux-1-dev-non-commercial-license)",
                "diffusers FluxKontextPipeline 0.42.1 (num_inference_steps=28 default)",
            ),
        ),
    )
}


def card_by_id(hub_id: str) -> ModelCard | None:
    """The card of a Hub id (case-insensitive), or ``None``."""
    for key, card in MODEL_CARDS.items():
        if key.lower() == hub_id.lower():
            return card
    return None


def card_for(model: str, *, editor: str) -> ModelCard | None:
    """The card of ``model`` (a Hub id or a pipeline folder) run by ``editor``.

    A Hub id is looked up by name. A folder is recognised by its transformer's
    config (``transformer/config.json``) when exactly one kind of checkpoint of
    this editor has that shape and licence (a folder with the 4B shape is 4B
    or 4B Base: both Apache-2.0, so the 4B card answers). ``None`` when the
    weights are not known: their licence must then be checked by hand.
    """
    card = card_by_id(model)
    if card is not None:
        return card if card.editor == editor else None
    path = Path(model).expanduser()
    try:
        config = json.loads((path / "transformer" / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    matches = [
        c
        for c in MODEL_CARDS.values()
        if c.editor == editor and c.signature and all(config.get(k) == v for k, v in c.signature.items())
    ]
    if not matches or len({c.licence for c in matches}) != 1:
        return None
    return matches[0]
