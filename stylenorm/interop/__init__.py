"""Other formats: ONNX export with a checked onnxruntime round trip (:mod:`.export`), and importers of
other projects' published checkpoints into stylenorm model folders (:mod:`.importers`)."""
