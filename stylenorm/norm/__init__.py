"""The normalization suite: every layer by class or by spec string.

>>> from stylenorm.norm import make_norm
>>> bn = make_norm("batch", 64)                      # torch.nn.BatchNorm2d compatible
>>> cin = make_norm("cin", 64, num_styles=8)         # cin(x, style_ids) or cin(x, weights)
>>> spade = make_norm("spade:instance:3x3", 64, label_nc=151)   # spade(x, segmap)

Any statistic pairs with any modulation without a new class::

    Normalization(make_stats("group:8", 64), EmbeddingAffine(10, 64), num_features=64)
"""

# the basic statistics register first: spec errors list "none, batch, …" before the rest
from stylenorm.norm import stats as stats
from stylenorm.norm.base import Modulation, Normalization, modulate
from stylenorm.norm.cross_iter import CrossIterBatchNorm2d, CrossIterBatchStats
from stylenorm.norm.distributed import SyncBatchStats, to_sync_batch_norm
from stylenorm.norm.layers import (
    IBN,
    EvoNormB0,
    EvoNormS0,
    FilterResponseNorm,
    MomentShortcut,
    PositionalNorm,
    moment_shortcut,
)
from stylenorm.norm.modulation import (
    ChannelAffine,
    EmbeddingAffine,
    StyleStatistics,
    VectorAffine,
    style_moments,
)
from stylenorm.norm.registry import (
    available_norms,
    available_stats,
    make_norm,
    make_stats,
    norm_entry,
    parse_spec,
)
from stylenorm.norm.spade import ClassModulation, SpatialModulation
from stylenorm.norm.stats import (
    BatchRenormStats,
    BatchStats,
    FRNStats,
    GroupStats,
    IdentityStats,
    InstanceStats,
    PositionStats,
    RMSStats,
    SwitchableStats,
    group_normalize,
)
from stylenorm.norm.tools import adapt_batch_norm, convert_norms
from stylenorm.norm.weight import CosineConv2d, CosineLinear, spectral_norm, weight_norm
from stylenorm.norm.whitening import BatchWhitening, InstanceWhitening, StyleCovariance, style_covariance

__all__ = [
    "IBN",
    "BatchRenormStats",
    "BatchStats",
    "BatchWhitening",
    "ChannelAffine",
    "ClassModulation",
    "CosineConv2d",
    "CosineLinear",
    "CrossIterBatchNorm2d",
    "CrossIterBatchStats",
    "EmbeddingAffine",
    "EvoNormB0",
    "EvoNormS0",
    "FRNStats",
    "FilterResponseNorm",
    "GroupStats",
    "IdentityStats",
    "InstanceStats",
    "InstanceWhitening",
    "Modulation",
    "MomentShortcut",
    "Normalization",
    "PositionStats",
    "PositionalNorm",
    "RMSStats",
    "SpatialModulation",
    "StyleCovariance",
    "StyleStatistics",
    "SwitchableStats",
    "SyncBatchStats",
    "VectorAffine",
    "adapt_batch_norm",
    "available_norms",
    "available_stats",
    "convert_norms",
    "group_normalize",
    "make_norm",
    "make_stats",
    "modulate",
    "moment_shortcut",
    "norm_entry",
    "parse_spec",
    "spectral_norm",
    "style_covariance",
    "style_moments",
    "to_sync_batch_norm",
    "weight_norm",
]
