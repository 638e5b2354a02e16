"""Running models: ``stylize`` (style models) and ``synthesize`` / ``generate`` (label maps, classes).

``stylenorm.inference.stylize.stylize`` and ``stylenorm.inference.synthesize.synthesize`` /
``generate`` are what the CLI and the server call; each dispatches through the model's family
(:mod:`stylenorm.families`).
"""
