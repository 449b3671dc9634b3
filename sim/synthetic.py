"""Synthetic data: layer tensors with a requested density (fraction of non-zero values).

Networks of the zoo have no trained weights, so the activations of their forward pass on random
images are about half zeros everywhere (ReLU of symmetric sums), unlike a trained network on real
images. A :class:`DataProfile` replaces a layer's input feature map (and, optionally, its weights)
by a synthetic tensor of the requested density, per layer or for all layers.

The generator (:func:`density_mask`, seeded ``numpy.random.Generator``):

- the number of non-zeros is exact: ``round(density * size)``, so the achieved density differs
  from the requested one by rounding only;
- unclustered: the zeros sit at positions drawn uniformly at random without replacement;
- clustered: the zeros form runs in memory order (along W, the innermost axis, continuing onto the
  next row, then channel, then image): ``k = round(zeros / cluster_size)`` runs (at least 1, at most
  one more than the non-zeros) whose lengths are a uniformly random composition of the zero count
  (mean length ``zeros / k``: ``cluster_size``, or, at densities below about ``1 / cluster_size``,
  where there are too few non-zeros to separate that many runs, about ``(1 - density) / density``,
  as with uniform zeros); the non-zeros fill the ``k + 1`` gaps
  between and around them (a uniformly random composition too, at least one non-zero between two
  runs). ``cluster_size`` is a free parameter (default :data:`DEFAULT_CLUSTER_SIZE` values), not
  calibrated on any measured feature map.
- values: non-zero feature-map values are ``|N(0, 1)|`` (ReLU outputs are non-negative), except for
  the network's input image, which keeps signed ``N(0, 1)`` values; weights keep the network's own
  values at the kept positions (positions drawn unclustered).

Published profile: the zeros in AlexNet's input feature maps of CONV1-5 on ImageNet measured on
the Eyeriss chip (:data:`ALEXNET_IFMAP_ZERO_FRACTION`, JSSC 2017).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from sim.errors import UsageError

DEFAULT_CLUSTER_SIZE = 8  # mean length of a zero run in clustered mode, in values (a free choice)

# Zeros in the input feature maps of AlexNet CONV1-5 on ImageNet, as a fraction: Y.-H. Chen,
# T. Krishna, J. Emer, V. Sze, "Eyeriss: An Energy-Efficient Reconfigurable Accelerator for Deep
# Convolutional Neural Networks", IEEE JSSC 2017 (per-layer AlexNet results, "zeros in ifmaps":
# 0.01%, 38.7%, 72.5%, 79.3%, 77.6%); reference table eyeriss_alexnet_jssc2017.csv.
ALEXNET_IFMAP_ZERO_FRACTION = {"conv1": 0.0001, "conv2": 0.387, "conv3": 0.725, "conv4": 0.793, "conv5": 0.776}
PUBLISHED_SOURCE = "Chen, Krishna, Emer, Sze, IEEE JSSC 2017: zeros in AlexNet's CONV1-5 ifmaps on ImageNet"
# Networks with a published input-density profile: layer -> density (1 - zero fraction).
PUBLISHED_INPUT_DENSITY = {
    "alexnet": {layer: round(1.0 - zeros, 6) for layer, zeros in ALEXNET_IFMAP_ZERO_FRACTION.items()},
}
PUBLISHED = "published"

Density = Mapping[str, float] | float | None


def _check_density(value: float, what: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise UsageError(f"{what} {value:g}: a density (fraction of non-zero values) must be between 0 and 1")
    return value


def _frozen_density(value: Density, what: str) -> Density:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return MappingProxyType({str(k): _check_density(v, f"{what} of {k!r}") for k, v in value.items()})
    return _check_density(value, what)


@dataclass(frozen=True)
class DataProfile:
    """What data the engine runs on. ``input_density`` / ``weight_density``: one density for every
    MAC layer, or one per layer name (layers not named keep their real data), or None (the forward
    pass's activations / the network's weights). ``clustered`` and ``cluster_size`` shape the
    synthetic inputs' zeros (module docstring). ``description`` says where the numbers come from."""

    input_density: Density = None
    weight_density: Density = None
    clustered: bool = False
    cluster_size: int = DEFAULT_CLUSTER_SIZE
    description: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_density", _frozen_density(self.input_density, "input density"))
        object.__setattr__(self, "weight_density", _frozen_density(self.weight_density, "weight density"))
        if int(self.cluster_size) != self.cluster_size or self.cluster_size < 1:
            raise UsageError(f"cluster size {self.cluster_size!r}: must be a whole number of values >= 1")

    @staticmethod
    def _of(density: Density, layer: str) -> float | None:
        if density is None or not isinstance(density, Mapping):
            return density
        return density.get(layer)

    def input_density_of(self, layer: str) -> float | None:
        return self._of(self.input_density, layer)

    def weight_density_of(self, layer: str) -> float | None:
        return self._of(self.weight_density, layer)

    def unknown_layers(self, layers: list[str]) -> list[str]:
        """Layer names the profile mentions that are not in ``layers`` (a misspelt name would
        otherwise silently leave a layer's data unchanged)."""
        named = set()
        for density in (self.input_density, self.weight_density):
            if isinstance(density, Mapping):
                named |= set(density)
        return sorted(named - set(layers))

    @property
    def synthetic(self) -> bool:
        return self.input_density is not None or self.weight_density is not None


REAL_DATA = DataProfile()


def published_profile(network: str, *, clustered: bool = False, cluster_size: int = DEFAULT_CLUSTER_SIZE) -> DataProfile:
    """The published per-layer input densities of ``network`` (a zoo name)."""
    if network not in PUBLISHED_INPUT_DENSITY:
        raise UsageError(f"no published input-density profile for network {network!r}; available for: "
                         f"{', '.join(PUBLISHED_INPUT_DENSITY)} (give a density between 0 and 1 instead)")
    densities = PUBLISHED_INPUT_DENSITY[network]
    text = ", ".join(f"{layer} {d:.4g}" for layer, d in densities.items())
    return DataProfile(input_density=densities, clustered=clustered, cluster_size=cluster_size,
                       description=f"published {network} input densities ({PUBLISHED_SOURCE}): {text}; "
                                   "other layers: forward pass")


def profile_from_option(value: str | None, network: str, *, clustered: bool = False) -> DataProfile:
    """The profile of the command line's ``--input-density {published,FLOAT}`` and ``--clustered``."""
    if value is None:
        if clustered:
            raise UsageError("--clustered shapes the zeros of synthetic inputs: give --input-density too")
        return REAL_DATA
    if value.strip().lower() == PUBLISHED:
        return published_profile(network, clustered=clustered)
    try:
        density = float(value)
    except ValueError:
        raise UsageError(f"--input-density {value!r}: give {PUBLISHED!r} or a density between 0 and 1") from None
    _check_density(density, "--input-density")
    return DataProfile(input_density=density, clustered=clustered,
                       description=f"synthetic input density {density:g} for every MAC layer")


# ------------------------------------------------------------------------------------------------
# The generator
# ------------------------------------------------------------------------------------------------
def _composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive integers summing to ``total`` (uniformly random among all such)."""
    if parts == 1:
        return np.array([total], np.int64)
    cuts = np.sort(rng.choice(total - 1, parts - 1, replace=False) + 1)
    return np.diff(np.concatenate(([0], cuts, [total]))).astype(np.int64)


def density_mask(shape: tuple[int, ...], density: float, rng: np.random.Generator, *,
                 clustered: bool = False, cluster_size: int = DEFAULT_CLUSTER_SIZE) -> np.ndarray:
    """Boolean mask (True = non-zero) of ``shape`` with exactly ``round(density * size)`` True
    values (module docstring: unclustered or zeros in runs along the innermost axis)."""
    density = _check_density(density, "density")
    size = int(np.prod(shape, dtype=np.int64))
    nonzero = int(round(density * size))
    zeros = size - nonzero
    if zeros == 0 or nonzero == 0:
        return np.full(shape, nonzero > 0, np.bool_)
    if not clustered:
        mask = np.ones(size, np.bool_)
        mask[rng.choice(size, zeros, replace=False)] = False
        return mask.reshape(shape)
    runs = max(1, min(int(round(zeros / cluster_size)), nonzero + 1, zeros))
    zero_runs = _composition(zeros, runs, rng)
    gaps = _composition(nonzero + 2, runs + 1, rng)  # the two outer gaps may be empty
    gaps[0] -= 1
    gaps[-1] -= 1
    lengths = np.empty(2 * runs + 1, np.int64)
    lengths[0::2], lengths[1::2] = gaps, zero_runs
    values = np.zeros(2 * runs + 1, np.bool_)
    values[0::2] = True
    return np.repeat(values, lengths).reshape(shape)


def synthetic_tensor(shape: tuple[int, ...], density: float, rng: np.random.Generator, *,
                     clustered: bool = False, cluster_size: int = DEFAULT_CLUSTER_SIZE,
                     signed: bool = False) -> np.ndarray:
    """float32 tensor of ``shape`` with the requested density: ``|N(0, 1)|`` non-zeros (signed
    ``N(0, 1)`` with ``signed``) where :func:`density_mask` is True."""
    mask = density_mask(shape, density, rng, clustered=clustered, cluster_size=cluster_size)
    values = rng.standard_normal(shape, dtype=np.float32)
    if not signed:
        values = np.abs(values)
    values[values == 0] = 1.0  # a drawn exact zero would lower the density
    return np.where(mask, values, np.float32(0)).astype(np.float32)


def sparsify_weights(weight: np.ndarray, density: float, rng: np.random.Generator) -> np.ndarray:
    """``weight`` with all but ``round(density * size)`` randomly chosen values set to zero
    (unstructured; a kept value that is already zero stays zero)."""
    return np.where(density_mask(weight.shape, density, rng), weight, np.float32(0)).astype(np.float32)


def achieved_density(values: np.ndarray) -> float:
    """Fraction of non-zero values."""
    return float(np.count_nonzero(values)) / values.size if values.size else float("nan")


def zero_runs(values: np.ndarray) -> np.ndarray:
    """Lengths of the runs of zeros of ``values`` in memory order (flattened)."""
    zero = np.concatenate(([False], np.asarray(values).reshape(-1) == 0, [False]))
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    return edges[1::2] - edges[0::2]
