"""Training and evaluation: SGD with momentum and weight decay, learning-rate schedules, the
mini-batch loop with a tqdm bar per epoch, top-1/top-5 evaluation, and the trained baselines
(LeNet-5 and the CIFAR-shaped CNN on Fashion-MNIST) that the pruning experiments start from.

Gradients come from :mod:`networks.backprop`. Pruning masks are honoured throughout: ``fit``
zeroes the stored weights under each mask once, and the optimiser masks every gradient and
update, so a pruned weight stays exactly zero while the network trains or fine-tunes.

Reproducibility: every random choice (initialisation, shuffling, dropout) comes from the
``numpy.random.Generator`` passed in, so a seed fixes a run (on one machine and BLAS build).
"""
from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from networks import backprop
from networks.errors import NetworkError
from networks.io import load_npz, save_npz
from networks.network import PRUNABLE_PARAM, Network

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE_DIR = REPO / "results" / "baselines"
# Quick (smoke-test) runs write here by default, never over the real baselines.
QUICK_BASELINE_DIR = DEFAULT_BASELINE_DIR / "quick"
HISTORY_FIELDS = (
    "epoch", "lr", "train_loss", "train_acc", "test_loss", "test_top1", "test_top5", "seconds",
)


# ------------------------------------------------------------------------------------------------
# Learning-rate schedules (functions of the fractional epoch, so they can step per batch)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ConstantLR:
    base_lr: float

    def __call__(self, epoch: float) -> float:
        return self.base_lr


@dataclass(frozen=True, kw_only=True)
class StepLR:
    """``base_lr * gamma ** floor(epoch / step_epochs)``."""

    base_lr: float
    step_epochs: int
    gamma: float = 0.1

    def __call__(self, epoch: float) -> float:
        return self.base_lr * self.gamma ** math.floor(epoch / self.step_epochs)


@dataclass(frozen=True, kw_only=True)
class CosineLR:
    """Linear warm-up over ``warmup_epochs``, then half a cosine from ``base_lr`` to ``min_lr``
    at ``epochs``."""

    base_lr: float
    epochs: float
    min_lr: float = 0.0
    warmup_epochs: float = 0.0

    def __call__(self, epoch: float) -> float:
        if epoch < self.warmup_epochs:
            # Floored at 1% so that the very first batches still move the weights.
            return self.base_lr * max(epoch / self.warmup_epochs, 0.01)
        span = max(self.epochs - self.warmup_epochs, 1e-12)
        progress = min(max((epoch - self.warmup_epochs) / span, 0.0), 1.0)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))


Schedule = Callable[[float], float]


def make_schedule(
    kind: str, *, base_lr: float, epochs: float, step_epochs: int | None = None, gamma: float = 0.1,
    warmup_epochs: float = 0.0,
) -> Schedule:
    """``"constant"``, ``"step"`` (default: divide by 10 every third of the run) or ``"cosine"``
    (with an optional linear warm-up)."""
    if kind == "constant":
        return ConstantLR(base_lr=base_lr)
    if kind == "step":
        return StepLR(base_lr=base_lr, step_epochs=step_epochs or max(1, round(epochs / 3)), gamma=gamma)
    if kind == "cosine":
        return CosineLR(base_lr=base_lr, epochs=epochs, warmup_epochs=warmup_epochs)
    raise ValueError(f"unknown learning-rate schedule {kind!r}; choose 'constant', 'step' or 'cosine'")


# ------------------------------------------------------------------------------------------------
# Optimiser
# ------------------------------------------------------------------------------------------------
class SGD:
    """Stochastic gradient descent with (optionally Nesterov) momentum and L2 weight decay.

    PyTorch's form: ``v = momentum * v + (g + weight_decay * w)``; ``w -= lr * v``. Weight decay
    applies to ``weight`` tensors only (decaying biases and batch-norm scales only hurts).
    Updates of pruned weights are masked, so they stay exactly where they are (zero).
    """

    def __init__(self, network: Network, *, momentum: float = 0.9, weight_decay: float = 5e-4, nesterov: bool = False) -> None:
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum={momentum} must be in [0, 1)")
        if weight_decay < 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        self.network = network
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.nesterov = nesterov
        self.velocity: dict[tuple[str, str], np.ndarray] = {}

    def step(self, grads: dict[str, dict[str, np.ndarray]], *, lr: float) -> None:
        for layer_name, layer_grads in grads.items():
            stored = self.network.params[layer_name]
            mask = self.network.masks.get(layer_name)
            for param_name, grad in layer_grads.items():
                weight = stored[param_name]
                direction = grad.astype(weight.dtype, copy=True)
                if self.weight_decay and param_name == PRUNABLE_PARAM:
                    direction += self.weight_decay * weight
                if self.momentum:
                    velocity = self.velocity.get((layer_name, param_name))
                    if velocity is None:
                        velocity = self.velocity[(layer_name, param_name)] = np.zeros_like(weight)
                    velocity *= self.momentum
                    velocity += direction
                    direction = direction + self.momentum * velocity if self.nesterov else velocity.copy()
                if mask is not None and param_name == PRUNABLE_PARAM:
                    direction *= mask
                weight -= np.asarray(lr, dtype=weight.dtype) * direction


def apply_masks(network: Network) -> None:
    """Zero the stored weights under every pruning mask (the forward pass already ignores them;
    zeroing them in storage keeps them zero for any later reader and any later mask change)."""
    for layer_name, mask in network.masks.items():
        stored = network.params[layer_name]
        stored[PRUNABLE_PARAM] = stored[PRUNABLE_PARAM] * mask


# ------------------------------------------------------------------------------------------------
# Evaluation and the training loop
# ------------------------------------------------------------------------------------------------
def _check_data(network: Network, images: np.ndarray, labels: np.ndarray, what: str) -> None:
    if images.ndim != 4 or tuple(images.shape[1:]) != network.input_shape:
        raise NetworkError(
            f"{what} images have shape {images.shape}; network {network.name!r} expects "
            f"(N, {', '.join(map(str, network.input_shape))})"
        )
    if labels.shape != (len(images),):
        raise NetworkError(f"{what} labels have shape {labels.shape}; expected ({len(images)},) to match the images")


def predict_logits(network: Network, images: np.ndarray, *, batch_size: int = 1000) -> np.ndarray:
    """Logits (N, classes) in inference form (running batch-norm statistics, no dropout)."""
    chunks = []
    for start in range(0, len(images), batch_size):
        tape = backprop.forward_train(network, images[start : start + batch_size], training=False, update_state=False)
        chunks.append(tape.logits.reshape(tape.logits.shape[0], -1))
    return np.concatenate(chunks)


def evaluate(network: Network, images: np.ndarray, labels: np.ndarray, *, batch_size: int = 1000) -> dict[str, float]:
    """Mean cross-entropy and top-1 / top-5 accuracy (fractions) in inference form."""
    labels = np.asarray(labels)
    _check_data(network, images, labels, "evaluation")
    logits = predict_logits(network, images, batch_size=batch_size)
    loss, _, _ = backprop.softmax_cross_entropy(logits, labels)
    k = min(5, logits.shape[1])
    top_k = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    return {
        "loss": loss,
        "top1": float(np.mean(logits.argmax(axis=1) == labels)),
        "top5": float(np.mean((top_k == labels[:, None]).any(axis=1))),
    }


def train_step(network: Network, optimiser: SGD, images: np.ndarray, labels: np.ndarray, *, lr: float, rng: np.random.Generator) -> tuple[float, float]:
    """One mini-batch: forward (training form), loss, backward, update. Returns (loss, accuracy)."""
    tape = backprop.forward_train(network, images, training=True, rng=rng)
    loss, grad_logits, probs = backprop.softmax_cross_entropy(tape.logits, labels)
    grads = backprop.backward(network, tape, grad_logits)
    optimiser.step(grads, lr=lr)
    return loss, float(np.mean(probs.argmax(axis=1) == labels))


def fit(
    network: Network,
    *,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    epochs: int,
    rng: np.random.Generator,
    batch_size: int = 64,
    lr: float = 0.05,
    schedule: str | Schedule = "cosine",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    progress: bool = True,
    on_epoch: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Train ``network`` in place with mini-batch SGD; return one history row per epoch.

    ``schedule`` is a name for ``make_schedule`` (with ``lr`` as the base rate) or a callable of
    the fractional epoch; the rate is updated every batch. Rows hold the keys of
    ``HISTORY_FIELDS`` (test columns are NaN without test data); ``on_epoch`` sees each row as
    soon as it is complete (e.g. to append it to a CSV).
    """
    train_labels = np.asarray(train_labels)
    _check_data(network, train_images, train_labels, "training")
    if (test_images is None) != (test_labels is None):
        raise ValueError("pass both test_images and test_labels, or neither")
    if test_images is not None:
        _check_data(network, test_images, np.asarray(test_labels), "test")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs={epochs} and batch_size={batch_size} must both be >= 1")
    backprop.check_trainable(network)
    if not network.has_params:
        network.init_params(rng)
    apply_masks(network)
    lr_at = make_schedule(schedule, base_lr=lr, epochs=epochs) if isinstance(schedule, str) else schedule
    optimiser = SGD(network, momentum=momentum, weight_decay=weight_decay)
    n = len(train_images)
    batches = math.ceil(n / batch_size)
    history = []
    for epoch in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(n)
        loss_sum = correct = seen = 0.0
        bar = tqdm(total=batches, desc=f"{network.name} epoch {epoch + 1}/{epochs}", unit="batch", disable=not progress, leave=False)
        with bar:
            for b in range(batches):
                index = order[b * batch_size : (b + 1) * batch_size]
                lr_now = lr_at(epoch + b / batches)
                loss, accuracy = train_step(network, optimiser, train_images[index], train_labels[index], lr=lr_now, rng=rng)
                if not math.isfinite(loss):
                    raise FloatingPointError(
                        f"{network.name}: training loss became {loss} in epoch {epoch + 1}, batch {b + 1}; "
                        f"lower the learning rate (lr={lr})"
                    )
                loss_sum += loss * len(index)
                correct += accuracy * len(index)
                seen += len(index)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", lr=f"{lr_now:.4g}", refresh=False)
                bar.update()
        train_seconds = time.perf_counter() - started
        row = {
            "epoch": epoch + 1,
            "lr": lr_at(epoch),
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "test_loss": math.nan,
            "test_top1": math.nan,
            "test_top5": math.nan,
            "seconds": train_seconds,
        }
        if test_images is not None:
            scores = evaluate(network, test_images, np.asarray(test_labels))
            row.update(test_loss=scores["loss"], test_top1=scores["top1"], test_top5=scores["top5"])
        history.append(row)
        logger.info(
            "%s epoch %d/%d: lr %.4g, train loss %.4f acc %.4f, test top-1 %.4f top-5 %.4f, %.1f s",
            network.name, epoch + 1, epochs, row["lr"], row["train_loss"], row["train_acc"],
            row["test_top1"], row["test_top5"], train_seconds,
        )
        if progress:
            tqdm.write(
                f"{network.name} epoch {epoch + 1}/{epochs}: loss {row['train_loss']:.4f} acc {row['train_acc']:.4f} "
                f"| test top-1 {row['test_top1']:.4f} top-5 {row['test_top5']:.4f} | {train_seconds:.1f} s"
            )
        if on_epoch is not None:
            on_epoch(row)
    return history


# ------------------------------------------------------------------------------------------------
# History files
# ------------------------------------------------------------------------------------------------
def write_history_csv(history: list[dict], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=HISTORY_FIELDS)
        writer.writeheader()
        for row in history:
            writer.writerow({k: row[k] for k in HISTORY_FIELDS})
    return path


def plot_history_csv(csv_path: str | Path, png_path: str | Path, *, title: str | None = None) -> Path:
    """Loss and accuracy curves drawn from a history CSV (so the plot always matches the file)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    table = pd.read_csv(csv_path)
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(table.epoch, table.train_loss, marker="o", label="train")
    ax_loss.plot(table.epoch, table.test_loss, marker="o", label="test")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.plot(table.epoch, 100 * table.train_acc, marker="o", label="train (top-1)")
    ax_acc.plot(table.epoch, 100 * table.test_top1, marker="o", label="test top-1")
    ax_acc.plot(table.epoch, 100 * table.test_top5, marker="o", label="test top-5")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return png_path


# ------------------------------------------------------------------------------------------------
# Trained baselines on Fashion-MNIST (padded to 32x32)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Recipe:
    """How a baseline is trained. ``build`` returns the untrained architecture."""

    build: Callable[[], Network]
    epochs: int
    batch_size: int
    lr: float
    schedule: str = "cosine"
    warmup_epochs: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 5e-4


def _lenet5() -> Network:
    from networks.zoo.lenet import lenet5

    return lenet5()


def _cifar_cnn_1ch() -> Network:
    from networks.zoo.cifar import cifar_cnn

    return cifar_cnn(in_channels=1)


BASELINES: dict[str, Recipe] = {
    "lenet5": Recipe(build=_lenet5, epochs=20, batch_size=64, lr=0.05),
    # A warm-up epoch: the He-initialised FC head (no batch norm) gives large early gradients.
    "cifar_cnn": Recipe(build=_cifar_cnn_1ch, epochs=10, batch_size=128, lr=0.05, warmup_epochs=1),
}
DATASET_TAG = "fashion_mnist"
QUICK_TRAIN_IMAGES = 1000


def _recipe(name: str) -> Recipe:
    if name not in BASELINES:
        raise NetworkError(f"no baseline recipe for {name!r}; baselines: {', '.join(BASELINES)}")
    return BASELINES[name]


def baseline_paths(name: str, *, directory: str | Path = DEFAULT_BASELINE_DIR) -> dict[str, Path]:
    """Where a baseline's weights (``model``), training curve (``csv``) and plot (``png``) live."""
    stem = Path(directory) / f"{name}_{DATASET_TAG}"
    return {"model": stem.with_suffix(".npz"), "csv": Path(f"{stem}_curve.csv"), "png": Path(f"{stem}_curve.png")}


def train_baseline(
    name: str,
    *,
    directory: str | Path | None = None,
    epochs: int | None = None,
    seed: int = 0,
    quick: bool = False,
    data_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[Network, list[dict], dict[str, Path]]:
    """Train baseline ``name`` on Fashion-MNIST and write its weights, CSV curve and PNG plot.

    ``quick`` trains on ``QUICK_TRAIN_IMAGES`` images for one epoch (unless ``epochs`` says
    otherwise) and evaluates on as many test images: a smoke test, not a baseline. Without the
    Fashion-MNIST IDX files it falls back to the shipped subset (with a warning). ``directory``
    defaults to ``DEFAULT_BASELINE_DIR``, or ``QUICK_BASELINE_DIR`` with ``quick``.
    """
    from networks import data

    recipe = _recipe(name)
    epochs = epochs or (1 if quick else recipe.epochs)
    rng = np.random.default_rng(seed)
    if quick:
        train, test = data.load_fashion_mnist_or_subset(directory=data_dir)
        train = train.take(QUICK_TRAIN_IMAGES, rng=rng)
        test = test.take(QUICK_TRAIN_IMAGES, rng=rng)
    else:  # a real baseline needs the full data set; the subset would silently give a weak one
        train = data.load_fashion_mnist("train", directory=data_dir)
        test = data.load_fashion_mnist("test", directory=data_dir)
    network = recipe.build().init_params(rng)
    if directory is None:
        directory = QUICK_BASELINE_DIR if quick else DEFAULT_BASELINE_DIR
    paths = baseline_paths(name, directory=directory)
    logger.info(
        "training %s on %d images (%s) for %d epoch(s), seed %d", name, len(train), train.source, epochs, seed
    )
    history: list[dict] = []

    def checkpoint_curve(row: dict) -> None:
        history.append(row)  # rewrite the CSV each epoch, so a long run can be watched
        write_history_csv(history, paths["csv"])

    fit(
        network, train_images=train.images, train_labels=train.labels, epochs=epochs, rng=rng,
        batch_size=recipe.batch_size, lr=recipe.lr, momentum=recipe.momentum,
        schedule=make_schedule(
            recipe.schedule, base_lr=recipe.lr, epochs=epochs, warmup_epochs=min(recipe.warmup_epochs, epochs / 2)
        ),
        weight_decay=recipe.weight_decay, test_images=test.images, test_labels=test.labels,
        progress=progress, on_epoch=checkpoint_curve,
    )
    save_npz(network, paths["model"])
    plot_history_csv(paths["csv"], paths["png"], title=f"{name} on Fashion-MNIST ({len(train)} training images)")
    return network, history, paths


def load_or_train_baseline(
    name: str,
    *,
    directory: str | Path = DEFAULT_BASELINE_DIR,
    seed: int = 0,
    data_dir: str | Path | None = None,
    progress: bool = True,
) -> Network:
    """The trained baseline ``name`` ("lenet5" or "cifar_cnn", 1 input channel) from
    ``directory``, training it first (full recipe, a few minutes) if its file is absent."""
    path = baseline_paths(name, directory=directory)["model"]
    if path.is_file():
        return load_npz(path)
    logger.info("%s not found; training the %s baseline first", path, name)
    network, _, _ = train_baseline(name, directory=directory, seed=seed, data_dir=data_dir, progress=progress)
    return network
