"""Training throughput: images per second of the forward pass and of forward + backward
(+ SGD update) for LeNet-5 and the CIFAR-shaped CNN (1 input channel, Fashion-MNIST shape), and
the implied seconds per epoch of 60,000 images.

    python experiments/bench_training.py            # about 15 s
    python experiments/bench_training.py --quick    # CI smoke: two batches per measurement

Data are random (throughput does not depend on the values). BLAS threads follow the usual
environment variables (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS).
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from networks import backprop, training
from networks.zoo.cifar import cifar_cnn
from networks.zoo.lenet import lenet5

EPOCH_IMAGES = 60_000


def images_per_second(step, *, batch_size: int, min_seconds: float) -> float:
    """Throughput over as many batches as fit in ``min_seconds`` (at least two), so that fast
    and slow models are both timed long enough to be stable."""
    step()  # warm-up: first-touch allocations and BLAS thread start-up
    batches = 0
    started = time.perf_counter()
    while batches < 2 or time.perf_counter() - started < min_seconds:
        step()
        batches += 1
    return batch_size * batches / (time.perf_counter() - started)


def bench(network, *, batch_size: int, min_seconds: float, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    network.init_params(rng)
    images = rng.standard_normal((batch_size, *network.input_shape), dtype=np.float32)
    labels = rng.integers(0, 10, batch_size)
    optimiser = training.SGD(network)

    def forward():
        backprop.forward_train(network, images, training=True, rng=rng)

    def train_step():
        training.train_step(network, optimiser, images, labels, lr=0.01, rng=rng)

    fwd = images_per_second(forward, batch_size=batch_size, min_seconds=min_seconds)
    fwd_bwd = images_per_second(train_step, batch_size=batch_size, min_seconds=min_seconds)
    return {"forward": fwd, "forward+backward": fwd_bwd, "epoch_s": EPOCH_IMAGES / fwd_bwd}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="two timed batches per measurement (smoke test)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    models = {"lenet5": lenet5, "cifar_cnn (1 channel)": lambda: cifar_cnn(in_channels=1)}
    print(f"batch size {args.batch_size}; images/s (forward in training form: batch-norm statistics, dropout)")
    print(f"{'model':24s} {'forward':>10s} {'fwd+bwd+SGD':>12s} {'s / 60k-image epoch':>20s}")
    for name, build in models.items():
        result = bench(build(), batch_size=args.batch_size, min_seconds=0.0 if args.quick else args.seconds, seed=args.seed)
        print(f"{name:24s} {result['forward']:10.0f} {result['forward+backward']:12.0f} {result['epoch_s']:20.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
