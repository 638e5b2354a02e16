"""Running trained models: stylize and synthesize (with exact tiling), Gatys optimisation, colour transfer.

``stylenorm.inference.stylize.stylize`` and ``stylenorm.inference.synthesize.synthesize`` /
``generate`` are what the CLI and the server call; each dispatches through the model's family
(:mod:`stylenorm.families`).
"""
