"""Training data: image folders (recursive, corrupt files skipped and counted), samplers, image loading."""

from stylenorm.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    ImageFolder,
    ImageScan,
    ResumableSampler,
    find_images,
    item_seed,
    load_training_image,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "DataError",
    "ImageFolder",
    "ImageScan",
    "ResumableSampler",
    "find_images",
    "item_seed",
    "load_training_image",
]
