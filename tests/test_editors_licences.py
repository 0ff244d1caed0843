"""diffusemix.editors.licences: each editor's weights and their licence, and the acceptance a dataset needs."""

from __future__ import annotations

import pytest

from diffusemix.editors import load_editor
from diffusemix.editors.licences import (
    acceptance_reason,
    check_licence,
    licence_line,
    licence_of,
    licence_record,
)
from diffusemix.editors.model_cards import CREATIVEML_OPENRAIL_M, MIT_ON_STABLE_DIFFUSION
from diffusemix.errors import SettingError
from diffusemix.export import ExportOptions
from diffusemix.schema import flag_for, label_for


def test_every_default_checkpoint_has_a_licence_and_only_the_non_commercial_ones_need_accepting():
    allowed = {"instruct-pix2pix": MIT_ON_STABLE_DIFFUSION, "img2img": CREATIVEML_OPENRAIL_M}
    for name, licence in allowed.items():
        ed = load_editor(name, device="cpu")
        assert licence_of(ed) is licence and acceptance_reason(ed) is None
        assert ed.describe()["licence"] == licence.name and ed.describe()["commercial_use"] is True
    for name in ("flux2-klein", "qwen-image-edit"):
        ed = load_editor(name, device="cpu")
        assert licence_of(ed).name == "Apache-2.0" and acceptance_reason(ed) is None
        check_licence(ed, None)  # nothing to accept
    kontext = load_editor("flux-kontext", device="cpu")
    assert "FLUX.1 [dev] Non-Commercial License" in acceptance_reason(kontext)
    nine = load_editor("flux2-klein", model="black-forest-labs/FLUX.2-klein-9B", device="cpu")
    assert "FLUX Non-Commercial License" in acceptance_reason(nine)


def test_the_refusal_names_the_setting_each_shell_its_own_way():
    kontext = load_editor("flux-kontext", device="cpu")
    err = pytest.raises(SettingError, check_licence, kontext, None).value
    assert err.owner == "ExportOptions" and err.field == "accept_license"
    assert err.message(namer=flag_for).startswith("--accept-license is needed: the weights of FLUX.1 Kontext [dev]")
    assert err.message(namer=label_for).startswith("Accept licence is needed")
    assert "--accept-license non-commercial" in err.message() and "flux2-klein" in err.message()
    check_licence(kontext, "non-commercial")
    assert ExportOptions(accept_license="non-commercial").accept_license == "non-commercial"
    with pytest.raises(SettingError, match="ExportOptions.accept_license must be one of non-commercial"):
        ExportOptions(accept_license="commercial")


def test_unknown_weights_need_accepting_for_the_instruction_editors_only(tiny_flux2_klein_dir, tiny_ip2p_dir):
    klein = load_editor("flux2-klein", model=str(tiny_flux2_klein_dir), device="cpu")
    assert licence_of(klein) is None and "is not known here" in acceptance_reason(klein)
    assert "licence unknown here" in licence_line(klein)
    ip2p = load_editor("instruct-pix2pix", model=str(tiny_ip2p_dir), device="cpu")
    assert licence_of(ip2p) is None and acceptance_reason(ip2p) is None  # the paper's editor from a folder, as before
    assert "licence unknown" in ip2p.describe()["summary"]


def test_what_run_json_records():
    preview = load_editor("preview")
    assert licence_record(preview, None) is None and acceptance_reason(preview) is None
    assert licence_line(preview).startswith("no weights")
    record = licence_record(load_editor("flux-kontext", device="cpu"), "non-commercial")
    assert record == {"model": "FLUX.1 Kontext [dev]", "name": "FLUX.1 [dev] Non-Commercial License",
                      "url": "https://huggingface.co/black-forest-labs/FLUX.1-Kontext-dev/blob/main/LICENSE.md",
                      "commercial_use": False, "accepted": "non-commercial"}
    # an acceptance that was not needed is not recorded as one
    assert licence_record(load_editor("flux2-klein", device="cpu"), "non-commercial")["accepted"] is None
