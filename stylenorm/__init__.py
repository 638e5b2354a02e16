"""stylenorm: normalization layers from BatchNorm to SPADE, the generators built from them, and a server.

``stylenorm.norm`` is the layer suite (``make_norm("group:32", 64)``), ``stylenorm.nets`` the generators,
``stylenorm.train`` the training recipes and ``stylenorm.server`` the HTTP server (the ``server`` extra).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _distribution_version

try:
    __version__: str = _distribution_version("stylenorm")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
