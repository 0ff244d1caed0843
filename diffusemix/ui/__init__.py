"""The Gradio app's rooms: one module per tab, one for what the tabs share.

    shared        the context (one editor for every user), boundary checks, error mapping,
                  the ZeroGPU ``gpu`` shim, the status banner, page parts two tabs use
    uploads       uploaded files: allowed places, header checks (kind, pixels), library decoding
    explore       the Explore tab: handlers (``explore`` = ``/explore``) and layout
    prompt_lab    the Prompt lab tab: handlers (``prompt_lab`` = ``/prompt_lab``) and layout
    batch_export  the Batch export tab: handlers (``batch_export`` = ``/export``) and layout

``app.py`` at the top of the checkout assembles the tabs and launches. These
modules import gradio; nothing else in ``diffusemix`` imports them (importing
``diffusemix`` never imports gradio). Importing a tab module builds nothing and
starts no server: its handlers are plain functions that take ``ctx=``.
"""
