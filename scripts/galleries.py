"""Gather the shipped models' named styles from the open set, named as the models call them.

    .venv/bin/python scripts/galleries.py [--open data/open]

Run ``scripts/open_images.py --out data/open`` first. Writes, byte for byte
from the open set:

* ``<open>/eight-styles/``: the multistyle model's table (training split), the
  file stems are its style names in table order (sorted), so
  ``stylenorm train multistyle --style data/open/eight-styles …`` retrains
  ``models/eight-styles`` with the same table;
* ``<open>/adain-gallery/``: the AdaIN model's named styles (held-out split:
  never seen in training).

Each folder gets a ``LICENSES.md`` with the rows of ``<open>/LICENSES.md`` for
its files (package, source path, licence); ``scripts/ship_model.py`` copies it
next to the gallery.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

EIGHT_STYLES = {  # style name -> file in <open>/style/train
    "brick": "gimp-data__brick.png",
    "elephants": "mate-backgrounds__elephants.png",
    "fluent-color": "ukui-wallpapers__fluent-color.png",
    "honeywave": "plasma-workspace-wallpapers__honeywave.png",
    "leopard": "gimp-data__leopard.png",
    "lightning": "gimp-data__lightning.png",
    "painting-colors": "lomiri-wallpapers-20.04__painting-colors_by__herobrine7gamer.png",
    "pink-marble": "gimp-data__pink_marble.png",
}
ADAIN_GALLERY = {  # style name -> file in <open>/style/heldout
    "bark": "gimp-data__bark.png",
    "pastel": "gimp-data__pastel.png",
    "cluster": "plasma-workspace-wallpapers__cluster.png",
    "wood": "gimp-data__wood4.png",
    "analog-pattern": "lomiri-wallpapers-16.04__analogpattern_by_peter_nerlich.png",
}
GALLERIES = {"eight-styles": ("train", EIGHT_STYLES), "adain-gallery": ("heldout", ADAIN_GALLERY)}


def licence_rows(licences: Path, files: dict[str, str]) -> str:
    """The table of <open>/LICENSES.md restricted to files, each row prefixed with its style name."""
    rows = {}
    for line in licences.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].strip("`") in files.values():
            rows[cells[0].strip("`")] = cells
    head = "| style | open-set file | source path | licence |\n|---|---|---|---|\n"
    body = "".join(
        f"| {name} | {rows[f][0]} | {rows[f][1]} | {rows[f][2]} |\n" for name, f in files.items() if f in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> int:
    """Copy the picks and their licence rows; exit 1 naming what is missing."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=Path, default=Path("data/open"), help="the open set's folder")
    args = parser.parse_args(argv)
    for folder, (split, picks) in GALLERIES.items():
        source = args.open / "style" / split
        missing = [f for f in picks.values() if not (source / f).is_file()]
        if missing:
            print(f"not in {source}: {', '.join(missing)}; run scripts/open_images.py --out {args.open}",
                  file=sys.stderr)
            return 1
        out = args.open / folder
        out.mkdir(parents=True, exist_ok=True)
        for name, file in picks.items():
            shutil.copyfile(source / file, out / f"{name}.png")
        intro = (f"# Licences of the {folder} images\n\nCopied from the open set of scripts/open_images.py "
                 "(full copyright texts: its LICENSES.md, from each Debian package's copyright file).\n\n")
        (out / "LICENSES.md").write_text(intro + licence_rows(args.open / "LICENSES.md", picks))
        print(f"{len(picks)} styles in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
