"""Write the small Fashion-MNIST subset shipped for tests and CI smoke runs.

Takes ``--per-class`` images of each class from the *test* split (so nothing a baseline trains on
leaks into it), chosen with a seeded generator, shuffles them, and stores raw uint8 pixels
(N, 28, 28) and labels (N,) in a compressed .npz, beside the data set's MIT licence notice.

    python experiments/make_test_subset.py            # tests/data/fashion_mnist_subset.npz
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from networks import data

REPO = Path(__file__).resolve().parents[1]
DEBIAN_COPYRIGHT = Path("/usr/share/doc/dataset-fashion-mnist/copyright")


def balanced_subset(labels: np.ndarray, *, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_class`` samples of every class, in random order."""
    chosen = []
    for label in np.unique(labels):
        candidates = np.flatnonzero(labels == label)
        if len(candidates) < per_class:
            raise SystemExit(f"class {label} has only {len(candidates)} samples, fewer than --per-class {per_class}")
        chosen.append(rng.choice(candidates, per_class, replace=False))
    return rng.permutation(np.concatenate(chosen))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--directory", type=Path, default=None, help="folder with the Fashion-MNIST IDX files")
    parser.add_argument("--per-class", type=int, default=200, help="images per class (default 200, 2,000 in all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=data.SUBSET_PATH)
    args = parser.parse_args(argv)

    root = data.fashion_mnist_dir(args.directory)
    images_name, labels_name = data.FASHION_MNIST_FILES["test"]
    try:
        images, labels = data.load_idx_pair(root / images_name, root / labels_name)
    except data.DatasetError as exc:
        print(f"make_test_subset: {exc}", file=sys.stderr)
        return 2
    index = balanced_subset(labels, per_class=args.per_class, rng=np.random.default_rng(args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images[index], labels=labels[index].astype(np.uint8))
    licence = args.out.parent / "FASHION_MNIST_LICENSE.txt"
    if DEBIAN_COPYRIGHT.is_file():
        header = (
            f"{args.out.name} holds {len(index)} images and labels of the Fashion-MNIST test split\n"
            "(https://github.com/zalandoresearch/fashion-mnist), taken from Debian's\n"
            "dataset-fashion-mnist package. Fashion-MNIST is distributed under the MIT (Expat)\n"
            f"licence; the notice below is copied from {DEBIAN_COPYRIGHT}.\n\n"
        )
        licence.write_text(header + DEBIAN_COPYRIGHT.read_text())
    else:
        print(f"warning: {DEBIAN_COPYRIGHT} not found; {licence} not written", file=sys.stderr)
    print(f"wrote {args.out} ({len(index)} images, {args.out.stat().st_size / 1e6:.2f} MB); licence: {licence}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
