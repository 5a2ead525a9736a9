"""Discovery of Landslide4Sense patches in the official folder layout.

The official release stores ``ROOT/<Split>/img/image_N.h5`` and, where labels were published,
``ROOT/<Split>/mask/mask_N.h5`` with the same N. The validation and test masks were released
later, so a split is "labelled" exactly when its ``mask`` folder exists. Discovery only looks at
file names; :mod:`training.validation` reads the contents.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from landslide_engine.errors import InputError

#: Split name used on the command line -> folder of the official layout.
SPLIT_FOLDERS: dict[str, str] = {"train": "TrainData", "val": "ValidData", "test": "TestData"}

_IMAGE_NAME = re.compile(r"^image_(\d+)\.h5$")


@dataclass(frozen=True)
class Patch:
    """One 128×128 patch: its numeric ID (neighbouring IDs are neighbouring places) and its files."""

    patch_id: int
    image: Path
    mask: Path | None


def split_folder(root: Path, split: str) -> Path:
    """The folder of ``split`` ("train", "val", "test" or an official folder name) under ``root``."""
    folder = SPLIT_FOLDERS.get(split, split)
    if folder not in SPLIT_FOLDERS.values():
        raise InputError(f"--split {split!r}: expected one of {', '.join(SPLIT_FOLDERS)}")
    return Path(root) / folder


def has_split(root: Path, split: str, labelled: bool = True) -> bool:
    """Whether ``split`` exists under ``root`` (with its ``mask`` folder when ``labelled``)."""
    folder = split_folder(root, split)
    return (folder / "img").is_dir() and (not labelled or (folder / "mask").is_dir())


def discover_patches(root: Path, split: str, require_masks: bool = True) -> list[Patch]:
    """All patches of one split, sorted by ID.

    Raises InputError naming the folder when the split is missing or empty, and naming the
    file when an image has no mask beside it or its name carries no patch ID.
    """
    folder = split_folder(root, split)
    img_dir, mask_dir = folder / "img", folder / "mask"
    if not img_dir.is_dir():
        raise InputError(f"{img_dir}: folder not found (expected the Landslide4Sense layout ROOT/{folder.name}/img)")
    if require_masks and not mask_dir.is_dir():
        raise InputError(f"{mask_dir}: folder not found; the {split} split has no masks")
    patches = []
    for image in sorted(img_dir.glob("*.h5")):
        match = _IMAGE_NAME.match(image.name)
        if match is None:
            raise InputError(f"{image}: file name is not image_<ID>.h5")
        patch_id = int(match.group(1))
        mask: Path | None = None
        if mask_dir.is_dir():
            mask = mask_dir / f"mask_{patch_id}.h5"
            if not mask.is_file():
                raise InputError(f"{mask}: mask file missing for {image.name}")
        patches.append(Patch(patch_id, image, mask))
    if not patches:
        raise InputError(f"{img_dir}: empty dataset, no image_<ID>.h5 files")
    return sorted(patches, key=lambda p: p.patch_id)
