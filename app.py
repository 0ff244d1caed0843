"""DiffuseMix in the browser: explore the six stages, curate prompts, export a dataset.

    python app.py                                  # http://127.0.0.1:7860, editor "auto"
    python app.py --editor instruct-pix2pix        # the paper's model (weights cached)
    python app.py --model /path/to/local/pipeline  # a local InstructPix2Pix folder
    python app.py --allow-save-prompts             # let the Prompt lab write prompts.yaml
    python app.py --score dino --scorer-model DIR  # Prompt lab scores from a local DINOv2 folder

The app lives in the package (``diffusemix.ui.app``; ``diffusemix app`` runs
it from an installed wheel). This file is the Hugging Face Space's entry
point: importing it builds ``demo`` from the environment (``DIFFUSEMIX_EDITOR``,
``DIFFUSEMIX_MODEL``, ``DIFFUSEMIX_SPEED``, ``DIFFUSEMIX_SCORE``, ``DIFFUSEMIX_SCORER_MODEL``: see the
README's table);
``python app.py`` builds it from the command line instead and launches it.
"""

from __future__ import annotations

from diffusemix.ui.app import build_demo, demo_from_environment, launch_kwargs, main, make_context, parse_args

__all__ = ["build_demo", "demo", "launch_kwargs", "main", "make_context", "parse_args"]

if __name__ == "__main__":
    main()
else:
    demo = demo_from_environment()
