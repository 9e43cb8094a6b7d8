"""``neurodeploy train``: train a model (the digits demo by default) and save our checkpoint."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..models.registry import arch_names
from ..checkpoint import load_model
from ..errors import BadInputError
from ..training import dataset_for_arch, digits_test_accuracy, train
from .common import MAX_BATCH, known_name, positive_int, positive_minutes

#: the most --epochs a training takes (a larger count is a typo, not a plan)
MAX_EPOCHS = 100_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a Spikingformer (the bundled digits task at any architecture's input; CIFAR/ImageNet folders)",
        description="Train a model and save a neurodeploy checkpoint. --data digits (the default of the digits "
        "models) is the bundled task: scikit-learn's 8x8 digits rendered at the architecture's input (32x32 or "
        "224x224 RGB images, [T, 2, 128, 128] DVS events; docs/data.md), built in memory. CIFAR10/100 and "
        "ImageNet read a local folder (--data DIR). GPU when present; torchrun for several GPUs (folders).",
    )
    p.add_argument("--arch", default="spikingformer-digits", type=known_name("--arch", arch_names, "architecture"),
                   metavar="ARCH", help="architecture name (neurodeploy.arch_names(); default: spikingformer-digits)")
    p.add_argument("-o", "--output", default="demo-out/spikingformer-digits.pt", help="checkpoint to write")
    p.add_argument("--data", default=None,
                   help="'digits' (the bundled task, any architecture) or a local data folder (CIFAR10/100, "
                        "ImageNet train/ val/)")
    p.add_argument("--epochs", type=positive_int("--epochs", MAX_EPOCHS), default=None)
    p.add_argument("--max-minutes", type=positive_minutes(), default=None, metavar="M",
                   help="stop after M minutes of training (the learning-rate schedule spans them); the test "
                        "accuracy is measured after")
    p.add_argument("--batch-size", type=positive_int("--batch-size", MAX_BATCH), default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted (or time-limited) run whose checkpoint is at --output, "
                        "mid-epoch where it stopped (digits task)")
    p.add_argument("--reuse", action="store_true", help="keep an existing checkpoint at --output instead of training")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.output)
    if args.max_minutes is not None and not args.max_minutes > 0:
        raise BadInputError(f"--max-minutes must be > 0, got {args.max_minutes:g}")
    if args.reuse and out.exists():
        model = load_model(out, arch=args.arch)  # a checkpoint of another architecture is an error
        acc = model.metrics.get("test_accuracy")
        if dataset_for_arch(model.arch) == "digits":
            acc = digits_test_accuracy(model)
        shown = "n/a" if acc is None else f"{acc * 100:.2f}%"
        print(f"reusing {out} ({model.arch}); test accuracy {shown}")
        return 0
    metrics = train(args.arch, out, data=args.data, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                    seed=args.seed, device=args.device, max_minutes=args.max_minutes, resume=args.resume)
    why = f", stopped at --max-minutes {args.max_minutes:g}" if metrics.get("stopped_by") == "time" else ""
    print(f"saved {out}; test accuracy {metrics['test_accuracy'] * 100:.2f}% "
          f"({metrics['epochs']:g} epochs, {metrics['steps']} steps, {metrics['train_seconds']} s{why})")
    return 0
