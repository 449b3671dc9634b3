"""The IDX loader, preprocessing and the shipped Fashion-MNIST subset."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from networks import data
from networks.data import DatasetError


def write_idx(path, array: np.ndarray, *, type_code: int = 0x08, compress: bool = False, magic: bytes | None = None) -> None:
    header = magic if magic is not None else bytes([0, 0, type_code, array.ndim])
    payload = header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)


@pytest.fixture
def idx_pair(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 12).astype(np.uint8)
    write_idx(tmp_path / "images.idx.gz", images, compress=True)
    write_idx(tmp_path / "labels.idx", labels)
    return tmp_path / "images.idx.gz", tmp_path / "labels.idx", images, labels


def test_reads_gzip_and_plain(idx_pair):
    images_path, labels_path, images, labels = idx_pair
    got_images, got_labels = data.load_idx_pair(images_path, labels_path)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64


def test_reads_multibyte_types(tmp_path):
    values = np.arange(-3, 3, dtype=np.int32).reshape(2, 3)
    write_idx(tmp_path / "ints.idx", values, type_code=0x0C)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "ints.idx"), values)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match=r"nothere\.idx: no such IDX file.*dataset-fashion-mnist"):
        data.read_idx(tmp_path / "nothere.idx")


def test_truncated_files_name_the_file(idx_pair, tmp_path):
    images_path, labels_path, images, _ = idx_pair
    plain = tmp_path / "cut.idx"
    write_idx(plain, images)
    plain.write_bytes(plain.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"cut\.idx: header says shape \(12, 28, 28\).*truncated"):
        data.read_idx(plain)
    cut_gzip = tmp_path / "cut.idx.gz"
    cut_gzip.write_bytes(images_path.read_bytes()[:500])
    with pytest.raises(DatasetError, match=r"cut\.idx\.gz: gzip data is truncated or corrupt"):
        data.read_idx(cut_gzip)
    header_only = tmp_path / "short.idx"
    header_only.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DatasetError, match=r"short\.idx: truncated header"):
        data.read_idx(header_only)


def test_wrong_magic_number_names_the_file(tmp_path):
    bad = tmp_path / "bad_magic.idx"
    write_idx(bad, np.zeros((2, 2, 2), np.uint8), magic=b"\x12\x34\x08\x03")
    with pytest.raises(DatasetError, match=r"bad_magic\.idx: wrong magic number 0x12340803"):
        data.read_idx(bad)


def test_wrong_dimensions_name_the_file(idx_pair):
    images_path, labels_path, _, _ = idx_pair
    with pytest.raises(DatasetError, match=r"labels\.idx: has 1 dimension\(s\), expected 3"):
        data.load_idx_pair(labels_path, labels_path)
    with pytest.raises(DatasetError, match=r"images\.idx\.gz: has 3 dimension\(s\), expected 1"):
        data.load_idx_pair(images_path, images_path)


def test_label_count_mismatch_names_both_files(idx_pair, tmp_path):
    images_path, _, _, labels = idx_pair
    short = tmp_path / "short_labels.idx"
    write_idx(short, labels[:10])
    with pytest.raises(DatasetError, match=r"short_labels\.idx: holds 10 labels but .*images\.idx\.gz holds 12 images"):
        data.load_idx_pair(images_path, short)


def test_label_out_of_range(idx_pair, tmp_path):
    images_path, _, _, labels = idx_pair
    bad = tmp_path / "bad_labels.idx"
    write_idx(bad, np.where(labels == labels[0], 11, labels).astype(np.uint8))
    with pytest.raises(DatasetError, match=r"bad_labels\.idx: labels range over .*expected \[0, 9\]"):
        data.load_idx_pair(images_path, bad)


def test_prepare_pads_and_normalises():
    images = np.full((2, 28, 28), 255, np.uint8)
    x = data.prepare_images(images, pad_to=32, normalise=False)
    assert x.shape == (2, 1, 32, 32) and x.dtype == np.float32
    assert x[0, 0, 2:30, 2:30].min() == 1.0 and x[0, 0, :2].max() == 0.0 and x[0, 0, :, 30:].max() == 0.0
    normalised = data.prepare_images(images, pad_to=None, mean=0.5, std=0.25)
    assert normalised.shape == (2, 1, 28, 28)
    np.testing.assert_allclose(normalised, 2.0)
    with pytest.raises(DatasetError, match="pad_to must be >= 28"):
        data.prepare_images(images, pad_to=20)


def test_default_directory_and_override(tmp_path, monkeypatch, idx_pair):
    monkeypatch.delenv(data.FASHION_MNIST_DIR_ENV, raising=False)
    assert data.fashion_mnist_dir() == data.DEBIAN_FASHION_MNIST_DIR
    monkeypatch.setenv(data.FASHION_MNIST_DIR_ENV, str(tmp_path))
    assert data.fashion_mnist_dir() == tmp_path
    assert not data.fashion_mnist_available()
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: no such IDX file"):
        data.load_fashion_mnist("test")
    with pytest.raises(DatasetError, match="unknown Fashion-MNIST split 'valid'"):
        data.load_fashion_mnist("valid")


def test_loads_explicit_idx_paths(idx_pair):
    images_path, labels_path, _, labels = idx_pair
    dataset = data.load_idx_dataset(images_path, labels_path)
    assert dataset.images.shape == (12, 1, 32, 32)
    np.testing.assert_array_equal(dataset.labels, labels)


def test_shipped_subset_is_balanced():
    assert data.SUBSET_PATH.stat().st_size < 2_000_000
    subset = data.load_subset(normalise=False)
    assert subset.images.shape == (2000, 1, 32, 32)
    assert np.bincount(subset.labels, minlength=10).tolist() == [200] * 10
    assert 0.0 <= subset.images.min() and subset.images.max() <= 1.0
    # Shuffled, so any half is near-balanced (the quick fallback splits it in two).
    assert np.bincount(subset.labels[:1000], minlength=10).min() >= 80
    assert (data.SUBSET_PATH.parent / "FASHION_MNIST_LICENSE.txt").read_text().count("Permission is hereby granted") >= 1


@pytest.mark.skipif(not data.fashion_mnist_available(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_loads():
    test = data.load_fashion_mnist("test")
    assert test.images.shape == (10000, 1, 32, 32)
    assert np.bincount(test.labels).tolist() == [1000] * 10
