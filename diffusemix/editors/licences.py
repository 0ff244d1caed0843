"""Whose weights make Î, under which licence, and whether a dataset may be made with them.

Every editor's weights have a licence (:mod:`diffusemix.editors.model_cards`):
the dry run, the export's summary, ``run.json``, the report and the app's
banner name it. A dataset is made with weights whose licence forbids
commercial use of the weights (FLUX.1 Kontext [dev], FLUX.2 [klein] 9B) only
when the caller accepts that explicitly: ``ExportOptions(accept_license="non-commercial")``,
``--accept-license non-commercial`` on the command line. The same holds for
an instruction editor whose weights are not known here (a local folder of
another shape, a fine-tune): their licence must be checked by hand, and until
then they are treated as non-commercial. The check runs before any work
(:func:`check_licence`), so a refused run writes nothing.

InstructPix2Pix and img2img folders that are not a known checkpoint are
described as "licence unknown" but not refused: the paper's editor runs from
local folders as before (their class sets ``unknown_licence_needs_acceptance``
to False).

Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from ..errors import SettingError

__all__ = [
    "ACCEPT_CHOICES",
    "card_of",
    "licence_of",
    "licence_text",
    "licence_notice",
    "licence_fields",
    "licence_line",
    "acceptance_reason",
    "check_licence",
    "licence_record",
]

#: What ``accept_license`` takes: the one kind of restriction a run can accept.
ACCEPT_CHOICES: tuple[str, ...] = ("non-commercial",)


def card_of(editor: Any) -> Any:
    """The :class:`~diffusemix.editors.model_cards.ModelCard` of an editor's weights, or ``None``
    (the preview, an editor of one's own, weights not known here)."""
    if not getattr(editor, "is_diffusion", False):
        return None
    card = getattr(editor, "card", None)
    if card is not None:
        return card
    model = getattr(getattr(editor, "spec", None), "model", None)
    if not isinstance(model, str):
        return None
    from .model_cards import card_for

    return card_for(model, editor=editor.name)


def licence_of(editor: Any) -> Any:
    """The :class:`~diffusemix.editors.model_cards.WeightsLicence` of an editor's weights, or ``None``."""
    card = card_of(editor)
    return card.licence if card is not None else None


def licence_text(card: Any) -> str:
    """ "Apache-2.0, commercial use allowed", or "licence unknown" (``card`` may be None)."""
    if card is None:
        return "licence unknown"
    allowed = "allowed" if card.licence.commercial_use else "NOT allowed"
    return f"{card.licence.name}, commercial use {allowed}"


def licence_notice(model: str, card: Any, *, hint: str = "") -> str | None:
    """What a user must hear about the weights' licence before making data:
    that it is unknown (``card`` None), or that it forbids commercial use."""
    if card is None:
        return f"the licence of {model} is not known here: check its model card before using what it makes{hint}"
    if not card.licence.commercial_use:
        return f"{card.licence.name}: the weights of {card.title} are for non-commercial use ({card.licence.url})"
    return None


def licence_fields(card: Any) -> dict[str, Any]:
    """The licence keys of an editor's ``describe()`` (None values when unknown)."""
    licence = card.licence if card is not None else None
    return {
        "licence": licence.name if licence else None,
        "licence_url": licence.url if licence else None,
        "commercial_use": licence.commercial_use if licence else None,
        "model_card": card.describe() if card else None,
    }


def licence_line(editor: Any) -> str:
    """One line for people: the model and its weights' licence (the dry run, the summary, the banner)."""
    if not getattr(editor, "is_diffusion", False):
        return "no weights (the preview editor: colour filters, not a diffusion model)"
    card = card_of(editor)
    model = getattr(editor.spec, "model", None) or editor.name
    if card is None:
        return f"{model}: licence unknown here (not a checkpoint diffusemix knows); check its model card"
    text = f"{card.title} ({model}): {licence_text(card)} ({card.licence.url})"
    if card.licence.note:
        text += f"; {card.licence.note}"
    return text


def acceptance_reason(editor: Any) -> str | None:
    """Why making a dataset with this editor needs ``accept_license="non-commercial"``, or ``None``."""
    if not getattr(editor, "is_diffusion", False):
        return None
    card = card_of(editor)
    model = getattr(editor.spec, "model", None) or editor.name
    if card is None:
        if not getattr(type(editor), "unknown_licence_needs_acceptance", False):
            return None
        return (
            f"the licence of the {editor.name} weights {model} is not known here (a checkpoint diffusemix does not"
            " know; its family includes weights for non-commercial use only): check its model card, and accept"
            " that the weights may be for non-commercial use only"
        )
    if card.licence.commercial_use:
        return None
    return (
        f"the weights of {card.title} ({model}) are under the {card.licence.name} ({card.licence.url}): they may"
        " be used for non-commercial purposes only (what it allows for the images they make is in the licence)"
    )


def check_licence(editor: Any, accept_license: str | None) -> None:
    """Refuse (before any work) to make a dataset with weights whose licence needs accepting.

    Raises:
        SettingError: (field ``accept_license`` of ``ExportOptions``) the licence forbids
            commercial use, or is unknown for an instruction editor, and was not accepted.
    """
    reason = acceptance_reason(editor)
    if reason is None or accept_license in ACCEPT_CHOICES:
        return
    raise SettingError(
        f"is needed: {reason}", owner="ExportOptions", field="accept_license",
        hint="Accept it with --accept-license non-commercial (accept_license=\"non-commercial\" in Python), or"
        " choose weights whose licence allows your use (e.g. --editor flux2-klein: FLUX.2 [klein] 4B, Apache-2.0)",
    )


def licence_record(editor: Any, accept_license: str | None) -> dict[str, Any] | None:
    """What run.json records of the weights' licence (``None`` for the preview)."""
    if not getattr(editor, "is_diffusion", False):
        return None
    card = card_of(editor)
    return {
        "model": card.title if card is not None else None,
        "name": card.licence.name if card is not None else None,
        "url": card.licence.url if card is not None else None,
        "commercial_use": card.licence.commercial_use if card is not None else None,
        "accepted": accept_license if acceptance_reason(editor) is not None else None,
    }
