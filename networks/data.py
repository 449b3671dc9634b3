"""Image data sets for training: an IDX reader (the MNIST / Fashion-MNIST file format, gzip or
plain), preprocessing (zero padding to 32x32, normalisation), Debian's Fashion-MNIST files as
the default source, and the small Fashion-MNIST subset shipped in ``tests/data``.

IDX layout: two zero bytes, a type code (0x08 = uint8, ...), the number of dimensions, each
dimension as a big-endian uint32, then the values in C order (big-endian for multi-byte types).
"""
from __future__ import annotations

import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

# Debian's ``dataset-fashion-mnist`` package installs the four IDX files here.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
# Overrides the default directory (same four file names) without code changes.
FASHION_MNIST_DIR_ENV = "EAPSIM_FASHION_MNIST_DIR"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
    "Ankle boot",
)
# Pixel mean and standard deviation of the Fashion-MNIST training images (28x28, scaled to
# [0, 1]); used for every split so that test data is normalised exactly like training data.
FASHION_MNIST_MEAN = 0.2860
FASHION_MNIST_STD = 0.3530

# The 2,000-image balanced subset of the test split kept in the repository for tests and CI.
SUBSET_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "fashion_mnist_subset.npz"

INSTALL_HINT = (
    "install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or "
    f"point {FASHION_MNIST_DIR_ENV} / the directory argument at a folder with the IDX files"
)

_IDX_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


class DatasetError(ValueError):
    """A data file is missing, malformed or inconsistent with its partner file."""


@dataclass(frozen=True)
class Dataset:
    """Images (N, C, H, W) float32 ready for a network, integer labels (N,), class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, count: int, *, rng: np.random.Generator | None = None) -> "Dataset":
        """The first ``count`` samples, or a random ``count`` of them when ``rng`` is given."""
        count = min(count, len(self))
        index = np.arange(count) if rng is None else np.sort(rng.choice(len(self), count, replace=False))
        return Dataset(self.images[index], self.labels[index], self.classes, f"{self.source} [{count} samples]")


# ------------------------------------------------------------------------------------------------
# IDX files
# ------------------------------------------------------------------------------------------------
def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise DatasetError(f"{path}: no such IDX file ({INSTALL_HINT})")
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise DatasetError(
            f"{path}: gzip data is truncated or corrupt ({exc}); re-download or reinstall the file"
        ) from None


def read_idx(path: str | Path, *, ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (gzip-compressed or plain; detected from the content, not the name).

    ``ndim``, when given, is the number of dimensions the caller expects (3 for images, 1 for
    labels). Raises DatasetError naming the file on a missing file, a wrong magic number, an
    unexpected number of dimensions or a size that does not match the header.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DatasetError(f"{path}: {len(data)} bytes is too short for an IDX header (4 bytes at least)")
    zero0, zero1, type_code, dims = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or type_code not in _IDX_TYPES:
        raise DatasetError(
            f"{path}: wrong magic number 0x{data[:4].hex()}; an IDX file starts with 0x0000 then a type "
            f"code in {{{', '.join(f'0x{code:02x}' for code in _IDX_TYPES)}}} and the number of dimensions "
            f"(MNIST images: 0x00000803, labels: 0x00000801)"
        )
    if ndim is not None and dims != ndim:
        raise DatasetError(
            f"{path}: has {dims} dimension(s), expected {ndim} "
            f"({'images N x rows x cols' if ndim == 3 else 'labels N' if ndim == 1 else 'per the caller'})"
        )
    header_bytes = 4 + 4 * dims
    if len(data) < header_bytes:
        raise DatasetError(f"{path}: truncated header ({len(data)} bytes, the {dims} sizes need {header_bytes})")
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    dtype = _IDX_TYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header_bytes
    if got != expected:
        raise DatasetError(
            f"{path}: header says shape {shape} ({expected} bytes of {dtype.name}) but the file holds "
            f"{got} bytes of data ({'truncated' if got < expected else 'trailing bytes'})"
        )
    return np.frombuffer(data, dtype=dtype, offset=header_bytes).reshape(shape).astype(dtype.newbyteorder("="))


def load_idx_pair(images_path: str | Path, labels_path: str | Path, *, classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Raw images (N, rows, cols) uint8 and labels (N,) int64 from an IDX image/label file pair,
    checked against each other (same N, labels in [0, classes))."""
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.dtype != np.uint8:
        raise DatasetError(f"{images_path}: images are {images.dtype}, expected uint8 pixels (type code 0x08)")
    if len(labels) != len(images):
        raise DatasetError(
            f"{labels_path}: holds {len(labels)} labels but {images_path} holds {len(images)} images; "
            f"the label file must belong to the image file"
        )
    labels = labels.astype(np.int64)
    if len(labels) and (labels.min() < 0 or labels.max() >= classes):
        raise DatasetError(
            f"{labels_path}: labels range over [{labels.min()}, {labels.max()}], expected [0, {classes - 1}]"
        )
    return images, labels


# ------------------------------------------------------------------------------------------------
# Preprocessing
# ------------------------------------------------------------------------------------------------
def prepare_images(
    images: np.ndarray,
    *,
    pad_to: int | None = 32,
    normalise: bool = True,
    mean: float = FASHION_MNIST_MEAN,
    std: float = FASHION_MNIST_STD,
) -> np.ndarray:
    """uint8 images (N, H, W) -> float32 (N, 1, H', W') in [0, 1], zero-padded to ``pad_to``
    (LeNet-5 expects 32x32; the border is background, like the original MNIST padding), then,
    with ``normalise``, shifted and scaled by ``mean`` and ``std``."""
    if images.ndim != 3:
        raise DatasetError(f"images have shape {images.shape}; expected (N, rows, cols)")
    x = images.astype(np.float32) / 255.0
    if pad_to is not None:
        _, h, w = x.shape
        if pad_to < h or pad_to < w:
            raise DatasetError(f"cannot pad {h}x{w} images to {pad_to}x{pad_to}; pad_to must be >= {max(h, w)}")
        top, left = (pad_to - h) // 2, (pad_to - w) // 2
        x = np.pad(x, ((0, 0), (top, pad_to - h - top), (left, pad_to - w - left)))
    if normalise:
        x = (x - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x[:, None], dtype=np.float32)


# ------------------------------------------------------------------------------------------------
# Fashion-MNIST
# ------------------------------------------------------------------------------------------------
def fashion_mnist_dir(directory: str | Path | None = None) -> Path:
    """The directory with the IDX files: the argument, else $EAPSIM_FASHION_MNIST_DIR, else
    Debian's install location."""
    if directory is not None:
        return Path(directory)
    return Path(os.environ.get(FASHION_MNIST_DIR_ENV) or DEBIAN_FASHION_MNIST_DIR)


def fashion_mnist_available(directory: str | Path | None = None) -> bool:
    root = fashion_mnist_dir(directory)
    return all((root / name).is_file() for pair in FASHION_MNIST_FILES.values() for name in pair)


def load_idx_dataset(
    images_path: str | Path,
    labels_path: str | Path,
    *,
    pad_to: int | None = 32,
    normalise: bool = True,
    classes: tuple[str, ...] = FASHION_MNIST_CLASSES,
) -> Dataset:
    """Any MNIST-style IDX pair as a ready-to-train ``Dataset``."""
    images, labels = load_idx_pair(images_path, labels_path, classes=len(classes))
    return Dataset(prepare_images(images, pad_to=pad_to, normalise=normalise), labels, classes, str(images_path))


def load_fashion_mnist(
    split: str,
    *,
    directory: str | Path | None = None,
    pad_to: int | None = 32,
    normalise: bool = True,
) -> Dataset:
    """Fashion-MNIST's ``"train"`` (60,000) or ``"test"`` (10,000) split from ``directory``
    (default: see ``fashion_mnist_dir``)."""
    if split not in FASHION_MNIST_FILES:
        raise DatasetError(f"unknown Fashion-MNIST split {split!r}; choose one of {sorted(FASHION_MNIST_FILES)}")
    root = fashion_mnist_dir(directory)
    images_name, labels_name = FASHION_MNIST_FILES[split]
    dataset = load_idx_dataset(root / images_name, root / labels_name, pad_to=pad_to, normalise=normalise)
    logger.info("loaded Fashion-MNIST %s split: %d images from %s", split, len(dataset), root)
    return dataset


def load_subset(path: str | Path = SUBSET_PATH, *, pad_to: int | None = 32, normalise: bool = True) -> Dataset:
    """The shipped Fashion-MNIST subset (``images`` uint8 (N, 28, 28), ``labels`` uint8 (N,))."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such subset file (experiments/make_test_subset.py writes it)")
    with np.load(path, allow_pickle=False) as archive:
        missing = {"images", "labels"} - set(archive.files)
        if missing:
            raise DatasetError(f"{path}: missing array(s) {sorted(missing)}; expected 'images' and 'labels'")
        images, labels = archive["images"], archive["labels"].astype(np.int64)
    if len(images) != len(labels):
        raise DatasetError(f"{path}: {len(images)} images but {len(labels)} labels")
    return Dataset(prepare_images(images, pad_to=pad_to, normalise=normalise), labels, FASHION_MNIST_CLASSES, str(path))


def load_fashion_mnist_or_subset(
    *, directory: str | Path | None = None, pad_to: int | None = 32, normalise: bool = True
) -> tuple[Dataset, Dataset]:
    """(train, test) from the full Fashion-MNIST files when present, else from the shipped
    subset split in two halves (enough for smoke tests; not for real baselines)."""
    if fashion_mnist_available(directory):
        return (
            load_fashion_mnist("train", directory=directory, pad_to=pad_to, normalise=normalise),
            load_fashion_mnist("test", directory=directory, pad_to=pad_to, normalise=normalise),
        )
    logger.warning(
        "Fashion-MNIST IDX files not found in %s; using the %s subset instead (%s)",
        fashion_mnist_dir(directory), SUBSET_PATH.name, INSTALL_HINT,
    )
    subset = load_subset(pad_to=pad_to, normalise=normalise)
    half = len(subset) // 2
    # The subset is stored shuffled, so both halves stay close to class-balanced.
    train = Dataset(subset.images[:half], subset.labels[:half], subset.classes, f"{subset.source} [first half]")
    test = Dataset(subset.images[half:], subset.labels[half:], subset.classes, f"{subset.source} [second half]")
    return train, test
