"""The public datasets' label layouts as NVlabs/SPADE reads them: ADE20K, Cityscapes, COCO-Stuff.

One definition of each layout serves training (:class:`~stylenorm.data.segmentation.SegmentationDataset`),
the import of official checkpoints (``stylenorm import spade --layout …``) and reading a dataset's
own label PNGs at synthesis (the card's ``label_file``). A :class:`DatasetLayout` gives

* SPADE's per-dataset options: ``label_nc``, ``contain_dontcare``, ``use_instance`` (the generator
  input has label_nc (+1 don't-care) (+1 instance edges) channels) and the official generator's
  geometry (crop size, aspect ratio, upsampling layers) and preprocessing;
* the label-file convention (:class:`LabelFile`): file value v is class v + shift, listed values
  are don't-care (the extra channel label_nc). ADE20K: v → v − 1, 0 ("other") and 255 are
  don't-care; COCO-Stuff: v → v, 255 (and 182) don't-care; Cityscapes labelIds: v → v, no don't-care;
* the class names and a palette of distinct colours.

Sources of the names and colours (public dataset definitions):

* ADE20K (SceneParsing 150, ``objectInfo150``): the short names and the 150-colour palette of
  mmsegmentation's ``ADE20KDataset`` (class k = file value k + 1). That palette gives road and
  skyscraper the same grey (140, 140, 140); here skyscraper gets (140, 140, 141).
* Cityscapes: ``cityscapesScripts/helpers/labels.py``, the 34 labels with ids 0..33 (``labelIds``
  files; license plate, id −1, is never written) and their colours. SPADE's label_nc 35 leaves
  channel 34 without a label: it is named ``class_34``. Colours repeated in that table (the
  five void labels 0..4 are black, pole and polegroup share a grey) are kept for the first label
  and nudged by one step for the others, since a card's palette must be distinct.
* COCO-Stuff: ``cocostuff/labels.txt`` ids 1..182 (91 things, the 11 unused COCO ids included,
  then 91 stuff classes); the ``stuffthingmaps`` PNGs hold id − 1, 255 = unlabeled. The dataset
  defines no palette: :func:`default_palette`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stylenorm.errors import SpecError

__all__ = [
    "DONTCARE_VALUE",
    "LAYOUT_PRESETS",
    "DatasetLayout",
    "LabelFile",
    "default_palette",
    "dontcare_values",
    "get_layout",
    "label_file",
    "layouts_with_channels",
]

DONTCARE_VALUE = 255  # SPADE's loaders map file value 255 to the don't-care index label_nc


def default_palette(n: int) -> list[list[int]]:
    """n distinct RGB colours, deterministic: the bits of the index spread over R, G, B (PASCAL VOC's scheme).

    Class 0 is black; the scheme is a bijection on 24 bits, so every index
    below 2^24 gets its own colour.
    """
    if n < 0:
        raise SpecError(f"a palette needs n ≥ 0 colours; got {n}")
    colours = []
    for index in range(n):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colours.append([r, g, b])
    return colours


# ------------------------------------------------------------------------------------------ label files


def dontcare_values(label_nc: int, shift: int = 0) -> tuple[int, ...]:
    """The file values SPADE's loaders make don't-care: 255 (when label_nc ≤ 255), and label_nc
    (unshifted layouts) or the value a shift takes to −1 (ADE20K's 0, "other")."""
    own = label_nc if shift == 0 else -1 - shift
    values = {own} | ({DONTCARE_VALUE} if label_nc <= DONTCARE_VALUE else set())
    return tuple(sorted(values))


@dataclass(frozen=True)
class LabelFile:
    """How a dataset's label file encodes classes: value v is class v + shift; ``dontcare`` values are
    the don't-care index label_nc (they win over the shift)."""

    shift: int = 0
    dontcare: tuple[int, ...] = ()

    def decode(self, raw: np.ndarray, label_nc: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw file values -> (classes 0..label_nc−1 with don't-care = label_nc, mask of values that are
        neither a class nor don't-care)."""
        raw = np.asarray(raw).astype(np.int64)
        values = raw + self.shift
        dont = np.isin(raw, np.asarray(self.dontcare, dtype=np.int64))
        valid = (values >= 0) & (values < label_nc)
        return np.where(dont, label_nc, values), ~(valid | dont)

    def describe(self, label_nc: int) -> str:
        """In words, e.g. "file value v is class v−1 (1..150); 0, 255 are don't-care"."""
        lo, hi = -self.shift, label_nc - 1 - self.shift
        if self.shift:
            text = f"file value v is class v{'+' if self.shift > 0 else '−'}{abs(self.shift)} ({lo}..{hi})"
        else:
            text = f"file value v is class v (0..{hi})"
        if self.dontcare:
            verb = "is" if len(self.dontcare) == 1 else "are"
            text += f"; {', '.join(str(v) for v in self.dontcare)} {verb} don't-care"
        return text

    def card(self) -> dict[str, Any]:
        """The form a model card's contract stores (``label_file``)."""
        return {"shift": self.shift, "dontcare": list(self.dontcare)}

    @classmethod
    def from_card(cls, data: Any, where: str = "the card") -> LabelFile:
        """Parse a card's ``label_file`` ({"shift": int, "dontcare": [int, …]}); SpecError if malformed."""
        ok = isinstance(data, Mapping) and set(data) <= {"shift", "dontcare"}
        shift = data.get("shift", 0) if ok else None
        dontcare = data.get("dontcare", []) if ok else None
        ints = isinstance(dontcare, list) and all(_is_int(v) for v in dontcare)
        if not ok or not _is_int(shift) or not ints:
            raise SpecError(
                f"{where}: label_file must be {{shift = <int>, dontcare = [<int>, …]}}; got {data!r}"
            )
        return cls(shift, tuple(sorted(set(dontcare))))  # type: ignore[arg-type]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def label_file(label_nc: int, contain_dontcare: bool, shift: int = 0) -> LabelFile:
    """The convention of a layout's label files: the shift, and SPADE's don't-care values when the
    generator has a don't-care channel (none otherwise)."""
    return LabelFile(shift, dontcare_values(label_nc, shift) if contain_dontcare else ())


# ------------------------------------------------------------------------------------------ layouts


def _distinct(colours: Iterable[Sequence[int]]) -> tuple[tuple[int, int, int], ...]:
    """Colours with repeats made distinct: the first keeps its colour, a later one steps its blue (then
    green, red) channel by 1, 2, … until the colour is unused."""
    used: set[tuple[int, int, int]] = set()
    out = []
    for colour in colours:
        c = (int(colour[0]), int(colour[1]), int(colour[2]))
        step = 0
        while c in used:
            step += 1
            channel, d = 2 - (step - 1) // 255 % 3, 1 + (step - 1) % 255
            base = [int(colour[0]), int(colour[1]), int(colour[2])]
            base[channel] = (base[channel] + d) % 256
            c = (base[0], base[1], base[2])
        used.add(c)
        out.append(c)
    return tuple(out)


@dataclass(frozen=True)
class DatasetLayout:
    """A public dataset as SPADE reads it (see the module docstring)."""

    name: str  # canonical: ade20k, cityscapes, coco-stuff
    title: str
    label_nc: int
    contain_dontcare: bool
    use_instance: bool
    label_shift: int
    classes: tuple[str, ...]
    palette: tuple[tuple[int, int, int], ...]
    crop_size: int
    aspect_ratio: float
    num_upsampling_layers: str
    preprocess: str
    source: str  # where the class names (and colours) come from

    def __post_init__(self) -> None:
        if len(self.classes) != self.label_nc or len(set(self.classes)) != self.label_nc:
            raise SpecError(f"layout {self.name}: {len(self.classes)} names for label_nc {self.label_nc}")
        if len(self.palette) != self.label_nc or len(set(self.palette)) != self.label_nc:
            raise SpecError(f"layout {self.name}: the palette needs {self.label_nc} distinct colours")

    @property
    def semantic_nc(self) -> int:
        """Channels of the generator input: label_nc (+1 don't-care) (+1 instance edges)."""
        return self.label_nc + int(self.contain_dontcare) + int(self.use_instance)

    @property
    def label_file(self) -> LabelFile:
        """How this dataset's label PNGs encode classes."""
        return label_file(self.label_nc, self.contain_dontcare, self.label_shift)

    def flags(self) -> str:
        """The equivalent ``stylenorm import spade`` flags (what ``--layout`` sets)."""
        parts = [f"--label-nc {self.label_nc}"]
        parts += ["--contain-dontcare"] if self.contain_dontcare else []
        parts += [] if self.use_instance else ["--no-instance"]
        if self.num_upsampling_layers != "normal":
            parts.append(f"--num-upsampling-layers {self.num_upsampling_layers}")
        if self.crop_size != 256:
            parts.append(f"--crop-size {self.crop_size}")
        if self.aspect_ratio != 1.0:
            parts.append(f"--aspect-ratio {self.aspect_ratio:g}")
        return " ".join(parts)


# mmsegmentation ADE20KDataset.METAINFO classes (objectInfo150 short names), class k = file value k + 1
_ADE20K_CLASSES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper",
    "fireplace", "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table",
    "pillow", "screen door", "stairway", "river", "bridge", "bookcase", "blind", "coffee table",
    "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm", "kitchen island",
    "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman",
    "bottle", "buffet", "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy",
    "washer", "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave", "pot",
    "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood", "sconce",
    "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
# mmsegmentation ADE20KDataset.METAINFO palette (the SceneParsing color150 colours)
_ADE20K_PALETTE = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3), (120, 120, 80),
    (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255), (235, 255, 7),
    (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140), (204, 255, 4),
    (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255),
    (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10), (7, 255, 255),
    (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8), (0, 255, 20),
    (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20), (0, 163, 255),
    (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0),
    (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112), (0, 255, 133),
    (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255), (51, 255, 0),
    (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0), (0, 255, 153),
    (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20),
    (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255), (0, 122, 255),
    (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0), (82, 0, 255),
    (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92), (184, 0, 255),
    (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255),
    (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235), (245, 0, 255),
    (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255), (20, 0, 255),
    (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255), (41, 255, 0),
    (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255),
    (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)
# cityscapesScripts helpers/labels.py: (name, colour) of ids 0..33, the values of *_gtFine_labelIds.png
_CITYSCAPES_LABELS = (
    ("unlabeled", (0, 0, 0)), ("ego vehicle", (0, 0, 0)), ("rectification border", (0, 0, 0)),
    ("out of roi", (0, 0, 0)), ("static", (0, 0, 0)), ("dynamic", (111, 74, 0)),
    ("ground", (81, 0, 81)), ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)),
    ("parking", (250, 170, 160)), ("rail track", (230, 150, 140)), ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)), ("fence", (190, 153, 153)), ("guard rail", (180, 165, 180)),
    ("bridge", (150, 100, 100)), ("tunnel", (150, 120, 90)), ("pole", (153, 153, 153)),
    ("polegroup", (153, 153, 153)), ("traffic light", (250, 170, 30)), ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)), ("terrain", (152, 251, 152)), ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)), ("rider", (255, 0, 0)), ("car", (0, 0, 142)), ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)), ("caravan", (0, 0, 90)), ("trailer", (0, 0, 110)), ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)), ("bicycle", (119, 11, 32)),
)
_CITYSCAPES_LABEL_NC = 35  # SPADE's; labelIds files hold 0..33, so channel 34 has no label
# cocostuff labels.txt ids 1..182 (0 "unlabeled" is the file value 255); class k = file value k = id k + 1
_COCO_STUFF_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "street sign", "stop sign", "parking meter", "bench", "bird",
    "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "hat", "backpack",
    "umbrella", "shoe", "eye glasses", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard",
    "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "plate", "wine glass", "cup", "fork", "knife", "spoon", "bowl",
    "banana", "apple", "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut",
    "cake", "chair", "couch", "potted plant", "bed", "mirror", "dining table", "window", "desk",
    "toilet", "door", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone", "microwave",
    "oven", "toaster", "sink", "refrigerator", "blender", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush", "hair brush",
    "banner", "blanket", "branch", "bridge", "building-other", "bush", "cabinet", "cage",
    "cardboard", "carpet", "ceiling-other", "ceiling-tile", "cloth", "clothes", "clouds", "counter",
    "cupboard", "curtain", "desk-stuff", "dirt", "door-stuff", "fence", "floor-marble",
    "floor-other", "floor-stone", "floor-tile", "floor-wood", "flower", "fog", "food-other",
    "fruit", "furniture-other", "grass", "gravel", "ground-other", "hill", "house", "leaves",
    "light", "mat", "metal", "mirror-stuff", "moss", "mountain", "mud", "napkin", "net", "paper",
    "pavement", "pillow", "plant-other", "plastic", "platform", "playingfield", "railing",
    "railroad", "river", "road", "rock", "roof", "rug", "salad", "sand", "sea", "shelf",
    "sky-other", "skyscraper", "snow", "solid-other", "stairs", "stone", "straw",
    "structural-other", "table", "tent", "textile-other", "towel", "tree", "vegetable",
    "wall-brick", "wall-concrete", "wall-other", "wall-panel", "wall-stone", "wall-tile",
    "wall-wood", "water-other", "waterdrops", "window-blind", "window-other", "wood",
)

LAYOUT_PRESETS: dict[str, DatasetLayout] = {
    "ade20k": DatasetLayout(
        name="ade20k", title="ADE20K", label_nc=150, contain_dontcare=True, use_instance=False,
        label_shift=-1, classes=_ADE20K_CLASSES, palette=_distinct(_ADE20K_PALETTE),
        crop_size=256, aspect_ratio=1.0, num_upsampling_layers="normal", preprocess="resize_and_crop",
        source="ADE20K SceneParsing objectInfo150 names and colours (mmsegmentation ADE20KDataset)",
    ),
    "cityscapes": DatasetLayout(
        name="cityscapes", title="Cityscapes", label_nc=_CITYSCAPES_LABEL_NC, contain_dontcare=False,
        use_instance=True, label_shift=0,
        classes=(*(n for n, _ in _CITYSCAPES_LABELS), "class_34"),
        palette=_distinct([c for _, c in _CITYSCAPES_LABELS] + [default_palette(35)[34]]),
        crop_size=512, aspect_ratio=2.0, num_upsampling_layers="more", preprocess="fixed",
        source="cityscapesScripts helpers/labels.py, ids 0..33 (labelIds) and colours",
    ),
    "coco-stuff": DatasetLayout(
        name="coco-stuff", title="COCO-Stuff", label_nc=182, contain_dontcare=True, use_instance=True,
        label_shift=0, classes=_COCO_STUFF_CLASSES,
        palette=tuple((c[0], c[1], c[2]) for c in default_palette(182)),
        crop_size=256, aspect_ratio=1.0, num_upsampling_layers="normal", preprocess="resize_and_crop",
        source="cocostuff labels.txt ids 1..182 (stuffthingmaps value = id − 1)",
    ),
}
_ALIASES = {"ade": "ade20k", "coco": "coco-stuff", "cocostuff": "coco-stuff"}


def get_layout(name: str) -> DatasetLayout:
    """A preset by name: ade20k, cityscapes, coco-stuff (also coco, coco_stuff); SpecError otherwise."""
    key = str(name).strip().lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in LAYOUT_PRESETS:
        raise SpecError(f"unknown dataset layout {name!r}; presets: {', '.join(LAYOUT_PRESETS)}")
    return LAYOUT_PRESETS[key]


def layouts_with_channels(semantic_nc: int) -> list[DatasetLayout]:
    """The presets whose generator input has semantic_nc channels."""
    return [layout for layout in LAYOUT_PRESETS.values() if layout.semantic_nc == semantic_nc]
