"""Generators and encoders built from :mod:`stylenorm.norm`."""

from stylenorm.nets.adain import AdaINNet, coral, decoder_for
from stylenorm.nets.transformer import TransformerNet
from stylenorm.nets.vgg import VGGEncoder, hub_path, layer_names, load_vgg_weights

__all__ = [
    "AdaINNet",
    "TransformerNet",
    "VGGEncoder",
    "coral",
    "decoder_for",
    "hub_path",
    "layer_names",
    "load_vgg_weights",
]
