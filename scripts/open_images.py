"""Gather freely licensed training images from Debian packages: photos as contents, artwork as styles.

    .venv/bin/python scripts/open_images.py --out data/open [--size 512] [--seed 0] [--cache data/.debcache]

The .deb files are fetched with ``apt-get download`` (no dependencies, nothing
installed) into ``--cache`` and reused while their version is still Debian's
candidate; each is unpacked with ``dpkg-deb -x`` into a temporary folder. The
images are not committed anywhere: this script reproduces them.

Output (``OUT`` is replaced as a whole on every run)::

    OUT/content/{train,heldout}/<package>__<name>.jpg   photos, shorter side --size, JPEG quality 92
    OUT/style/{train,heldout}/<package>__<name>.png     artwork, shorter side --size; patterns tiled
    OUT/LICENSES.md     per package: version, upstream, licences, the Files: stanzas quoted, files taken
    OUT/manifest.json   every output file: package, source path, licence, split, kind, size
    OUT/copyright/<package>.txt   the package's /usr/share/doc/<package>/copyright, verbatim

Classification rule (content = photograph, style = anything drawn, painted,
rendered or patterned), by package and path, first matching rule wins; the
full table is ``PACKAGES`` below:

* mate-backgrounds: ``nature/*`` are photos -> content; ``abstract/*`` and
  ``desktop/*`` -> style, except the two logo wallpapers (skipped).
* plasma-workspace-wallpapers: the wallpapers named in ``PLASMA_PHOTOS``
  (BytheWater, ColdRipple, ColorfulCups, DarkestHour, EveningGlow, FallenLeaf,
  Grey, Kite, OneStandsOut, Path, summer_1am) are photos -> content; every
  other wallpaper is an illustration or abstract render -> style. One picture
  per wallpaper: the largest of ``contents/images/``; ``images_dark/`` skipped.
* lomiri-wallpapers-16.04 / -20.04 (Ubuntu Touch): photos -> content, except
  the abstract ones named in the table -> style.
* sddm-theme-maldives: its background photo -> content.
* gnome-backgrounds, ukui-wallpapers, desktop-base (one GRUB background per
  theme): all abstract / illustrated -> style.
* gimp-data: every ``.pat`` pattern -> style, tiled (not scaled) to
  --size × --size so the texture stays crisp.

Judgement calls: plasma's Volna (a smooth, photo-like render of a beach) and
lomiri's analogpattern (a photographed texture) are styles; lomiri's
Infinite-Sea (the Milky Way over the sea) and plasma's DarkestHour and Grey
are contents.

Skipped, and counted with the reason: SVG (not rasterized), formats Pillow
cannot decode (JPEG XL …), images whose shorter side is under 256 px (patterns
excepted), mostly transparent overlays (MATE's abstract PNGs are drawn by the
desktop over a plain colour), flat colours (GNOME's vnc-*), smaller copies of
a picture already taken, and every file whose licence is not clearly free.

Licences are read from each package's own ``/usr/share/doc/<pkg>/copyright``.
Debian's machine-readable format: the last ``Files:`` stanza whose pattern
matches wins. Its paths are relative to the upstream source tree, not to the
installed tree, so a pattern applies when it matches the end of the installed
path, after dropping leading source-tree folders that the installed path does
not contain (``16.04/``, ``data/``) as long as a literal name is left. A file
is used only when every licence it needs (``and``), or one alternative
(``or``), is on ``FREE_LICENCES``; a file no stanza covers is skipped. The
free-form copyright of gnome-backgrounds is read through ``FREEFORM``, whose
quotes must appear verbatim in that file.

Held-out split: each group of related pictures (colour variants of one design,
numbered patterns) gets a number from SHA-256 of (seed, kind, package, group);
the lowest groups are held out until ~15 % of the kind's images (at least 4)
are. A group never straddles the split, and since a group's number does not
depend on the others, adding a package moves only groups near the cut-off.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from stylenorm.data.patterns import PatternError, read_pattern, tile_image
from stylenorm.errors import StylenormError
from stylenorm.imageio import ImageError, open_image, pil_to_array

GENERATOR = "scripts/open_images.py"
KINDS = ("content", "style")
SPLITS = ("train", "heldout")
MIN_SIDE = 256
MIN_OPAQUE = 0.9  # mean alpha below this: an overlay meant to be drawn over something else
MIN_STD = 2.0  # mean per-channel standard deviation (0..255) below this: a flat colour (GNOME vnc-*)
HELDOUT_FRACTION = 0.15
MIN_HELDOUT = 4
JPEG_QUALITY = 92
DECODED = ("PNG", "JPEG", "WEBP")
# Files looked at at all; anything else a rule matches (xml, json …) is ignored silently.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".jxl", ".avif", ".tif", ".tiff", ".bmp", ".pat"}
VECTOR_SUFFIXES = {".svg", ".svgz"}

# DFSG-free licences, by the short names Debian's copyright files use (compared case-insensitively).
FREE_LICENCES = {
    "gpl-2", "gpl-2+", "gpl-3", "gpl-3+", "lgpl-2", "lgpl-2+", "lgpl-2.1", "lgpl-2.1+", "lgpl-3", "lgpl-3+",
    "mit", "expat", "bsd-2-clause", "bsd-3-clause", "isc", "zlib", "apache-2.0",
    "cc0", "cc0-1.0", "public-domain", "pd",
    "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0",
    "cc-by-sa-2.0", "cc-by-sa-2.5", "cc-by-sa-3.0", "cc-by-sa-4.0",
}  # fmt: skip


@dataclass(frozen=True)
class Rule:
    """Which files of a package are taken: a pattern on the installed path ('*' crosses '/'), and as what."""

    pattern: str
    kind: str  # "content", "style" or "skip"
    reason: str = ""  # why, for "skip"


@dataclass(frozen=True)
class PackageSpec:
    """A Debian package to take images from, and how to name, classify and group them."""

    name: str
    rules: tuple[Rule, ...]
    # regex on the installed path whose group 'name' names the output file; default: the stem
    title: str = ""
    # (regex, replacement) on the title: titles equal after it are related pictures (same split)
    related: tuple[str, str] = ("", "")


PLASMA_PHOTOS = (
    "BytheWater", "ColdRipple", "ColorfulCups", "DarkestHour", "EveningGlow", "FallenLeaf",
    "Grey", "Kite", "OneStandsOut", "Path", "summer_1am",
)  # fmt: skip
PLASMA = "usr/share/wallpapers"
LOMIRI = "usr/share/backgrounds"
# Why a rule skips a file, where more than one rule gives the reason.
LOGO = "logo or banner artwork, not a picture"
DARK = "dark variant of a wallpaper already taken"
# Skip categories the summary only counts.
QUIET = ("smaller copy", DARK)

PACKAGES = (
    PackageSpec(
        "mate-backgrounds",
        (
            Rule("usr/share/backgrounds/mate/nature/*", "content"),
            Rule("usr/share/backgrounds/mate/desktop/GreenTraditional.*", "skip", LOGO),
            Rule("usr/share/backgrounds/mate/desktop/Float-into-MATE.*", "skip", LOGO),
            Rule("usr/share/backgrounds/mate/*", "style"),
        ),
        related=(r"^(ubuntu-mate|mate-stripes)-.*$", r"\1"),
    ),
    PackageSpec(
        "plasma-workspace-wallpapers",
        (
            Rule(f"{PLASMA}/*/contents/images_dark/*", "skip", DARK),
            *(Rule(f"{PLASMA}/{name}/contents/images/*", "content") for name in PLASMA_PHOTOS),
            Rule(f"{PLASMA}/*/contents/images/*", "style"),
        ),
        title=rf"^{PLASMA}/(?P<name>[^/]+)/",
    ),
    PackageSpec(
        "lomiri-wallpapers-16.04",
        (
            Rule(f"{LOMIRI}/analogpattern_by_*", "style"),
            Rule(f"{LOMIRI}/umang_by_*", "style"),
            Rule(f"{LOMIRI}/*", "content"),
        ),
    ),
    PackageSpec(
        "lomiri-wallpapers-20.04",
        (
            Rule(f"{LOMIRI}/Infinite-Sea_by_*", "content"),
            Rule(f"{LOMIRI}/Kleiber_by_*", "content"),
            Rule(f"{LOMIRI}/*", "style"),
        ),
    ),
    PackageSpec(
        "sddm-theme-maldives",
        (
            Rule("usr/share/sddm/themes/maldives/background.jpg", "content"),
            Rule("usr/share/sddm/themes/maldives/maldives.jpg", "skip", "screenshot of the login screen"),
        ),
    ),
    PackageSpec(
        "gnome-backgrounds",
        (Rule("usr/share/backgrounds/gnome/*", "style"),),
        related=(r"-[dl]$", ""),  # -d / -l: the dark and light colourings of one design
    ),
    PackageSpec(
        "ukui-wallpapers",
        (
            Rule(f"{LOMIRI}/focal-ubuntukylin.*", "skip", LOGO),
            Rule(f"{LOMIRI}/*", "style"),
        ),
    ),
    PackageSpec(
        "desktop-base",
        (Rule("usr/share/desktop-base/*-theme/grub/grub-16x9.png", "style"),),
        title=r"^usr/share/desktop-base/(?P<name>[^/]+)-theme/",
    ),
    PackageSpec(
        "gimp-data",
        (Rule("usr/share/gimp/2.0/patterns/*.pat", "style"),),
        related=(r"\d+(px)?$", ""),  # wood1 … wood5, marble1 … marble3, Stripes1px/2px
    ),
)


@dataclass(frozen=True)
class FreeformLicence:
    """A licence statement of a copyright file not in the machine-readable format."""

    pattern: str  # on the file name
    licence: str
    copyright: str
    quote: str  # must appear in the copyright file (whitespace-insensitive), else nothing is assumed
    note: str = ""


FREEFORM = {
    "gnome-backgrounds": (
        FreeformLicence(
            "adwaita*",
            "CC-BY-SA-3.0",
            "2011 Jakub Steiner <jimmac@gmail.com>",
            " - adwaita*\n - Chmiri.jpg:\n - Terraform-green.jpg:\n"
            "   Copyright © 2011 Jakub Steiner <jimmac@gmail.com>\n"
            "   Licensed under Creative Commons Attribution-ShareAlike 3.0 License.",
        ),
        FreeformLicence(
            "*",
            "GPL-2+",
            "the package's list: 2016 Helena Bartošová, 2011 Quinn Dombrowski, 2011 Felix Leupold,"
            " 2011 Jakub Steiner, 2011 Garrett LeSage",
            "This package is free software; you can redistribute it and/or modify\n"
            "it under the terms of the GNU General Public License as published by\n"
            "the Free Software Foundation; either version 2 of the License, or\n"
            "(at your option) any later version.",
            note="the file is not named under 'Image Authors'; the package-wide statement applies",
        ),
    ),
}


class Skip(Exception):
    """A file is not used; the message says why."""


# ---------------------------------------------------------------- copyright files


@dataclass
class Stanza:
    """One paragraph of a machine-readable copyright file."""

    fields: dict[str, str]
    text: str

    @property
    def files(self) -> list[str]:
        return self.fields.get("files", "").split()

    @property
    def licence(self) -> str:
        return self.fields.get("license", "").split("\n", 1)[0].strip()


@dataclass
class Licence:
    """The licence found for one file, and the text that says so."""

    short: str
    copyright: str
    quote: str
    note: str = ""


def parse_copyright(text: str) -> list[Stanza]:
    """Debian copyright-format 1.0 text -> its paragraphs (field names lower-cased, continuations joined)."""
    stanzas = []
    for block in re.split(r"\n[ \t]*\n", text.strip()):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line and not line.startswith("#"):
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if fields:
            stanzas.append(Stanza(fields, block.strip("\n")))
    return stanzas


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A copyright-format pattern as a regex: '*' any characters including '/', '?' any one character."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern))


def pattern_matches(pattern: str, path: str) -> bool:
    """Whether a copyright file's source-tree pattern covers an installed path (see the module docstring)."""
    parts = path.strip("/").split("/")
    pat = pattern.removeprefix("./").strip("/").split("/")
    for drop in range(len(pat)):
        if drop:
            gone, rest = pat[drop - 1], pat[drop:]
            # only literal folders the installed path lacks, and a literal name must be left to match
            if any(c in gone for c in "*?") or gone in parts or all(any(c in p for c in "*?") for p in rest):
                return False
        rx = _glob_regex("/".join(pat[drop:]))
        if any(rx.fullmatch("/".join(parts[i:])) for i in range(len(parts))):
            return True
    return False


def _squash(text: str) -> str:
    return " ".join(text.split())


def find_licence(package: str, path: str, copyright_text: str, stanzas: list[Stanza]) -> Licence | None:
    """The licence a package's copyright file gives a file of it (installed path), or None if none does."""
    if package in FREEFORM:
        squashed = _squash(copyright_text)
        for entry in FREEFORM[package]:
            if _glob_regex(entry.pattern).fullmatch(path.rsplit("/", 1)[-1]):
                if _squash(entry.quote) not in squashed:
                    return None  # the file changed: assume nothing
                return Licence(entry.licence, entry.copyright, entry.quote, entry.note)
        return None
    found = None
    for stanza in stanzas:  # the last matching stanza wins
        if "files" in stanza.fields and any(pattern_matches(p, path) for p in stanza.files):
            found = stanza
    if found is None:
        return None
    holders = "; ".join(line for line in found.fields.get("copyright", "").splitlines() if line.strip())
    return Licence(found.licence, holders, found.text)


def is_free(expression: str) -> bool:
    """Whether a licence expression ('A and B', 'A or B', 'A, B') is clearly free."""
    alternatives = re.split(r"\s+or\s+", expression.strip(), flags=re.IGNORECASE)
    for alternative in alternatives:
        names = [n for n in re.split(r"\s+and\s+|\s*,\s*", alternative, flags=re.IGNORECASE) if n]
        if names and all(n.strip().lower() in FREE_LICENCES for n in names):
            return True
    return False


# ---------------------------------------------------------------- Debian packages


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise SystemExit(f"error: {cmd[0]} not found; this script needs Debian's apt and dpkg") from exc
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout


def deb_field(deb: Path, name: str) -> str:
    """One control field of a .deb ('' if absent)."""
    return _run(["dpkg-deb", "-f", str(deb), name]).strip()


def candidate_version(package: str) -> str | None:
    """The version apt would download now (from the local package lists), or None if unknown."""
    try:
        out = subprocess.run(
            ["apt-cache", "show", "--no-all-versions", package], capture_output=True, text=True, check=False
        ).stdout
    except FileNotFoundError:
        return None
    match = re.search(r"^Version:\s*(\S+)", out, flags=re.MULTILINE)
    return match.group(1) if match else None


def fetch(package: str, cache: Path) -> Path:
    """The package's .deb in the cache: reused if it is the candidate version, else downloaded."""
    cache.mkdir(parents=True, exist_ok=True)
    wanted = candidate_version(package)
    cached = sorted(cache.glob(f"{package}_*.deb"))
    for deb in cached:
        if deb_field(deb, "Package") == package and (wanted is None or deb_field(deb, "Version") == wanted):
            return deb
    # download into a scratch folder first so an interrupted download never lands in the cache
    with tempfile.TemporaryDirectory(dir=cache, prefix=".download-") as tmp:
        # running as root, apt cannot drop to its _apt user in a folder _apt may not write: say it is fine
        _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package], cwd=Path(tmp))
        got = sorted(Path(tmp).glob(f"{package}_*.deb"))
        if not got:
            raise SystemExit(f"error: apt-get download {package} produced no .deb")
        target = cache / got[0].name
        shutil.move(got[0], target)
    for old in cached:
        if old != target:
            old.unlink()  # an older version: keep one per package
    return target


# ---------------------------------------------------------------- images


@dataclass
class Candidate:
    """A file of a package that a rule took, on its way to the output."""

    package: str
    version: str
    path: str  # installed path, relative to /
    kind: str
    title: str
    group: str
    licence: Licence
    original: tuple[int, int] = (0, 0)
    file: str = ""  # the output's name
    split: str = ""
    out_size: tuple[int, int] = (0, 0)
    bytes: int = 0


def sanitize(text: str) -> str:
    """A lower-case file-name piece: letters, digits, '_', '.', '-'."""
    return re.sub(r"[^a-z0-9_.-]+", "-", text.lower()).strip("-._") or "image"


def title_of(spec: PackageSpec, path: str) -> str:
    """The name a file is known by in the output (sanitized, without extension)."""
    match = re.search(spec.title, path) if spec.title else None
    if match:
        return sanitize(match.group("name"))
    stem = path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    # Elephants_3840x2160 is Elephants at another size
    return sanitize(re.sub(r"[_-]\d+x\d+$", "", stem) or stem)


def rule_for(spec: PackageSpec, path: str) -> Rule | None:
    """The first rule of the package that matches an installed path."""
    for rule in spec.rules:
        if _glob_regex(rule.pattern).fullmatch(path):
            return rule
    return None


def header_size(path: Path) -> tuple[int, int]:
    """(width, height) from the header only; Skip if the format cannot be read."""
    if path.suffix.lower() == ".pat":
        try:
            return read_pattern(path).size
        except PatternError as exc:
            raise Skip(f"cannot decode: {exc}") from exc
    try:
        with Image.open(path, formats=DECODED) as img:
            return img.size
    except Exception as exc:  # Pillow's UnidentifiedImageError, OSError …
        raise Skip(f"cannot decode: {path.suffix.lower()} is a format Pillow cannot read here") from exc


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, transparency composited over white; Skip if mostly transparent."""
    if img.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (img.mode == "P" and img.has_transparency_data):
        rgba = img.convert("RGBA")
        opaque = float(np.asarray(rgba.getchannel("A"), dtype=np.float32).mean()) / 255.0
        if opaque < MIN_OPAQUE:
            raise Skip(f"mostly transparent: {opaque:.0%} opaque, an overlay rather than a picture")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode in ("RGB", "L", "P", "1"):
        return img.convert("RGB")
    # 16-bit, float and CMYK modes: stylenorm's converter knows their real ranges
    return Image.fromarray((pil_to_array(img) * 255.0 + 0.5).astype(np.uint8), "RGB")


def render(path: Path, kind: str, size: int) -> tuple[Image.Image, tuple[int, int]]:
    """Decode, convert to RGB and bring to the output size -> (image, original size); Skip if unusable."""
    if path.suffix.lower() == ".pat":
        try:
            pattern = read_pattern(path)
        except PatternError as exc:
            raise Skip(f"cannot decode: {exc}") from exc
        original = pattern.size
        rgb = to_rgb(pattern)
        # patterns are a few dozen pixels: repeat them, never scale, so the texture stays crisp
        out = tile_image(rgb, size, size) if min(original) < size else _resize(rgb, size)
    else:
        try:
            img = open_image(path, formats=DECODED)
        except ImageError as exc:
            raise Skip(f"cannot decode: {exc}") from exc
        original = img.size
        if min(original) < MIN_SIDE:
            raise Skip(f"too small: {original[0]}×{original[1]}, shorter side under {MIN_SIDE} px")
        out = _resize(to_rgb(img), size)
    spread = float(np.asarray(out, dtype=np.float32).reshape(-1, 3).std(axis=0).mean())
    if spread < MIN_STD:
        raise Skip(f"flat colour: standard deviation {spread:.1f} of 255")
    return out, original


def _resize(img: Image.Image, size: int) -> Image.Image:
    """Shorter side -> size, keeping the aspect ratio (Lanczos; Pillow's reducing_gap makes it fast)."""
    width, height = img.size
    scale = size / min(width, height)
    target = (max(size, round(width * scale)), max(size, round(height * scale)))
    if target == img.size:
        return img
    return img.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)


def save(img: Image.Image, target: Path, kind: str) -> None:
    """Photos as high-quality JPEG (disk), artwork as PNG (flat colours and sharp edges stay exact)."""
    if kind == "content":
        img.save(target, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
    else:
        img.save(target, "PNG", optimize=True)


# ---------------------------------------------------------------- one package


@dataclass
class PackageResult:
    """What one package gave: its metadata, copyright file and the files taken or skipped."""

    name: str
    version: str
    homepage: str
    copyright_text: str
    taken: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (installed path, reason)


def walk(root: Path) -> list[str]:
    """Every regular file under root as a '/'-separated path relative to it (symlinks are not followed)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            full = Path(folder) / name
            if not full.is_symlink():
                found.append(full.relative_to(root).as_posix())
    return found


def _unrooted(exc: Exception, root: Path) -> str:
    """An error message with the temporary unpack folder cut from the paths it names."""
    return str(exc).replace(f"{root}/", "/")


def process_package(spec: PackageSpec, deb: Path, pool: Path, size: int, scratch: Path) -> PackageResult:
    """Unpack one .deb, choose and license its images, and write them (unsplit) into pool/<kind>/."""
    root = scratch / spec.name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    _run(["dpkg-deb", "-x", str(deb), str(root)])
    try:
        copyright_file = root / "usr/share/doc" / spec.name / "copyright"
        text = (
            copyright_file.read_text(encoding="utf-8", errors="replace") if copyright_file.is_file() else ""
        )
        result = PackageResult(spec.name, deb_field(deb, "Version"), deb_field(deb, "Homepage"), text)
        stanzas = parse_copyright(text)
        chosen: dict[str, Candidate] = {}
        for path in walk(root):
            rule = rule_for(spec, path)
            suffix = Path(path).suffix.lower()
            if rule is None or suffix not in IMAGE_SUFFIXES | VECTOR_SUFFIXES:
                continue
            try:
                if rule.kind == "skip":
                    raise Skip(rule.reason)
                if suffix in VECTOR_SUFFIXES:
                    raise Skip("SVG: vector artwork, not rasterized")
                licence = find_licence(spec.name, path, text, stanzas)
                if licence is None:
                    raise Skip("no licence: the copyright file has no statement that covers this file")
                if not is_free(licence.short):
                    raise Skip(f"not free: licence {licence.short!r} is not clearly free")
                title = title_of(spec, path)
                pattern, repl = spec.related
                group = re.sub(pattern, repl, title) if pattern else title
                cand = Candidate(spec.name, result.version, path, rule.kind, title, group, licence)
                cand.original = header_size(root / path)
                # several sizes of one picture: keep the largest
                key = f"{rule.kind}/{title}"
                other = chosen.get(key)
                if other is not None:
                    small, big = sorted((other, cand), key=lambda c: c.original[0] * c.original[1])
                    chosen[key] = big
                    result.skipped.append((small.path, f"smaller copy: of /{big.path}"))
                    continue
                chosen[key] = cand
            except Skip as exc:
                result.skipped.append((path, _unrooted(exc, root)))
        for cand in chosen.values():
            try:
                img, cand.original = render(root / cand.path, cand.kind, size)
            except (Skip, StylenormError) as exc:
                result.skipped.append((cand.path, _unrooted(exc, root)))
                continue
            ext = "jpg" if cand.kind == "content" else "png"
            cand.file = f"{sanitize(spec.name)}__{cand.title}.{ext}"
            target = pool / cand.kind / cand.file
            target.parent.mkdir(parents=True, exist_ok=True)
            save(img, target, cand.kind)
            cand.out_size = img.size
            cand.bytes = target.stat().st_size
            result.taken.append(cand)
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------- split and outputs


def _rank(seed: int, kind: str, package: str, group: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\0{kind}\0{package}\0{group}".encode()).digest()[:8], "big")


def assign_splits(cands: list[Candidate], seed: int, fraction: float, minimum: int) -> None:
    """Hold out the lowest-ranked groups of each kind until ~fraction of its images (at least minimum) are."""
    for kind in KINDS:
        items = [c for c in cands if c.kind == kind]
        groups: dict[tuple[str, str], list[Candidate]] = defaultdict(list)
        for c in items:
            groups[(c.package, c.group)].append(c)
        # at least one image stays for training
        target = min(max(minimum, round(fraction * len(items))), max(len(items) - 1, 0))
        held = 0
        for key in sorted(groups, key=lambda k: (_rank(seed, kind, *k), k)):
            fits = held + len(groups[key]) < len(items)  # a big group must not empty the training set
            split = "heldout" if held < target and fits else "train"
            for c in groups[key]:
                c.split = split
            held += len(groups[key]) if split == "heldout" else 0


def write_licenses(out: Path, results: list[PackageResult], size: int, seed: int) -> None:
    """OUT/LICENSES.md: per package the version, upstream, licences, quoted stanzas and files taken."""
    lines = [
        "# Licences of the images in this folder",
        "",
        f"Generated by `{GENERATOR}` (--size {size}, --seed {seed}) from Debian packages (Debian's `main`"
        " archive). Each image was converted to RGB and resized (shorter side "
        f"{size} px; GIMP patterns tiled to {size}×{size}); that is the only change made to it.",
        "The licences below are quoted from each package's `/usr/share/doc/<package>/copyright`, copied in"
        " full to `copyright/<package>.txt`. Attribution-ShareAlike licences (CC-BY-SA) require crediting"
        " the authors named here and sharing adaptations under the same licence.",
        "",
    ]
    for res in sorted(results, key=lambda r: r.name):
        stanzas = parse_copyright(res.copyright_text)
        header = stanzas[0].fields if stanzas else {}
        upstream = header.get("source", "")
        if not upstream:  # a free-form copyright file says where the source came from in prose
            match = re.search(r"(https?://\S+)", res.copyright_text)
            upstream = match.group(1) if match else ""
        lines += [f"## {res.name} {res.version}", ""]
        if header.get("upstream-name"):
            lines.append(f"- Upstream name: {header['upstream-name']}")
        lines.append(f"- Upstream source: {upstream or 'not stated'}")
        if res.homepage:
            lines.append(f"- Homepage: {res.homepage}")
        used = sorted({c.licence.short for c in res.taken})
        lines.append(f"- Licences of the files taken: {', '.join(used) if used else 'none taken'}")
        lines.append(f"- Copyright file: `/usr/share/doc/{res.name}/copyright` -> `copyright/{res.name}.txt`")
        lines.append("")
        quotes: dict[str, list[Candidate]] = defaultdict(list)
        for c in res.taken:
            quotes[c.licence.quote].append(c)
        if quotes:
            lines += ["Statements that cover the files taken:", ""]
        for quote, cands in quotes.items():
            notes = sorted({c.licence.note for c in cands if c.licence.note})
            lines += ["```text", quote.strip("\n"), "```", ""]
            lines += [f"Note: {n}." for n in notes]
            lines += [f"Applies to: {', '.join(sorted(f'`{c.file}`' for c in cands))}", ""]
        if res.taken:
            lines += ["| output file | source path | licence | kind | split |", "|---|---|---|---|---|"]
            for c in sorted(res.taken, key=lambda c: c.file):
                lines.append(f"| `{c.file}` | `/{c.path}` | {c.licence.short} | {c.kind} | {c.split} |")
            lines.append("")
        unfree = [(p, r) for p, r in res.skipped if r.startswith(("no licence", "not free"))]
        if unfree:
            lines += ["Not taken because of their licence:", ""]
            lines += [f"- `/{p}`: {r}" for p, r in unfree]
            lines.append("")
    (out / "LICENSES.md").write_text("\n".join(lines), encoding="utf-8")


def write_manifest(
    out: Path, cands: list[Candidate], results: list[PackageResult], args: argparse.Namespace
) -> None:
    """OUT/manifest.json: every output file and every file skipped."""
    files = [
        {
            "file": f"{c.kind}/{c.split}/{c.file}",
            "kind": c.kind,
            "split": c.split,
            "package": c.package,
            "version": c.version,
            "source_path": f"/{c.path}",
            "licence": c.licence.short,
            "copyright": c.licence.copyright,
            "width": c.out_size[0],
            "height": c.out_size[1],
            "original_width": c.original[0],
            "original_height": c.original[1],
            "bytes": c.bytes,
            "group": f"{c.package}/{c.group}",
        }
        for c in sorted(cands, key=lambda c: (c.kind, c.split, c.file))
    ]
    skipped = [
        {"package": r.name, "source_path": f"/{p}", "reason": why} for r in results for p, why in r.skipped
    ]
    manifest = {
        "generator": GENERATOR,
        "size": args.size,
        "seed": args.seed,
        "heldout_fraction": args.heldout,
        "packages": {r.name: r.version for r in results},
        "files": files,
        "skipped": skipped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8")


def check_replaceable(out: Path) -> None:
    """Refuse to go on if OUT holds something this script did not write (it is deleted at the end)."""
    if not out.exists():
        return
    manifest = out / "manifest.json"
    ours = manifest.is_file() and GENERATOR in manifest.read_text("utf-8", errors="replace")
    if not out.is_dir() or (not ours and any(out.iterdir())):
        raise SystemExit(f"error: {out} exists and was not written by {GENERATOR}; not replacing it")


def replace_output(staging: Path, out: Path) -> None:
    """Put the finished staging folder in OUT's place."""
    check_replaceable(out)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)


def summary(results: list[PackageResult], cands: list[Candidate], out: Path, seconds: float) -> str:
    """The report printed at the end: counts per package, kind and split, skipped files and why."""
    lines = ["", f"{'package':32} {'version':24} content  style  skipped"]
    for r in results:
        kinds = Counter(c.kind for c in r.taken)
        lines.append(f"{r.name:32} {r.version:24} {kinds['content']:7} {kinds['style']:6} {len(r.skipped):8}")
    lines.append("")
    for kind in KINDS:
        counts = Counter(c.split for c in cands if c.kind == kind)
        lines.append(f"{kind:8} train {counts['train']:4}   heldout {counts['heldout']:3}")
    by_category: dict[str, list[str]] = defaultdict(list)
    for r in results:
        for path, why in r.skipped:
            category, _, detail = why.partition(": ")
            by_category[category].append(f"{r.name}: /{path}" + (f"  ({detail})" if detail else ""))
    lines += ["", f"skipped {sum(len(r.skipped) for r in results)} files:"]
    for category, entries in sorted(by_category.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(entries):3} × {category}")
        if category in QUIET:  # many sizes of one wallpaper: the count says enough
            per_package = Counter(e.split(":", 1)[0] for e in entries)
            lines += [f"        {pkg}: {n}" for pkg, n in sorted(per_package.items())]
        else:
            lines += [f"        {e}" for e in entries]
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    lines += ["", f"{len(cands)} images, {total / 1e6:.1f} MB in {out}, {seconds:.0f} s"]
    return "\n".join(lines)


def build(args: argparse.Namespace, staging: Path) -> tuple[list[PackageResult], list[Candidate]]:
    """Fetch and process every package, split, and write the complete output into staging."""
    pool = staging / ".pool"
    pool.mkdir(parents=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="open_images-") as scratch:
        for spec in PACKAGES:
            if args.packages and spec.name not in args.packages:
                continue
            deb = fetch(spec.name, args.cache)
            print(f"{spec.name}: {deb.name}", flush=True)
            results.append(process_package(spec, deb, pool, args.size, Path(scratch)))
    cands = [c for r in results for c in r.taken]
    assign_splits(cands, args.seed, args.heldout, MIN_HELDOUT)
    for kind in KINDS:
        for split in SPLITS:  # all four folders exist even when one stays empty
            (staging / kind / split).mkdir(parents=True)
    for c in cands:
        (pool / c.kind / c.file).rename(staging / c.kind / c.split / c.file)
    shutil.rmtree(pool)
    copies = staging / "copyright"
    copies.mkdir()
    for r in results:
        (copies / f"{r.name}.txt").write_text(r.copyright_text, encoding="utf-8")
    write_licenses(staging, results, args.size, args.seed)
    write_manifest(staging, cands, results, args)
    return results, cands


def main(argv: list[str] | None = None) -> int:
    """Fetch, unpack, choose, convert, split and document; print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced as a whole)")
    parser.add_argument("--size", type=int, default=512, help="shorter side of the outputs in pixels")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train / held-out split")
    parser.add_argument(
        "--cache", type=Path, default=Path("data/.debcache"), help="where .deb files are kept"
    )
    parser.add_argument("--heldout", type=float, default=HELDOUT_FRACTION, help="fraction held out per kind")
    parser.add_argument(
        "--packages", nargs="+", metavar="PKG", choices=[p.name for p in PACKAGES], help="only these packages"
    )
    args = parser.parse_args(argv)
    if args.size < MIN_SIDE:
        parser.error(f"--size must be at least {MIN_SIDE}")
    if not 0.0 <= args.heldout < 1.0:
        parser.error("--heldout must be in [0, 1)")
    start = time.monotonic()
    out = args.out.resolve()
    check_replaceable(out)
    staging = out.parent / f".{out.name}.partial"
    if staging.exists():
        shutil.rmtree(staging)  # left over by a run that was killed
    try:
        results, cands = build(args, staging)
        replace_output(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(summary(results, cands, out, time.monotonic() - start))
    for kind in KINDS:
        held = sum(1 for c in cands if c.kind == kind and c.split == "heldout")
        if held < MIN_HELDOUT:
            print(
                f"warning: only {held} held-out {kind} images (wanted at least {MIN_HELDOUT})",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
