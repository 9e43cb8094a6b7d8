"""Training: the digits demo model on CPU, and the official recipes' data sets from a local folder.

* ``digits``: scikit-learn's bundled 8x8 digits (1797 images), fixed stratified split
  (80/20, ``random_state=0``: 1437 train / 360 test), pixels scaled to [0, 1] and standardised with
  the training-set mean/std.  This is the demo: >= 93 % test accuracy in minutes on 2 cores.
* ``cifar10`` / ``cifar100``: torchvision's CIFAR folders under ``--data`` (no download), the official
  normalisation; ``imagenet``: ``--data/{train,val}`` ImageFolder trees at 224 px.
* GPU when present; several GPUs with ``torchrun`` (DistributedDataParallel, one process per GPU).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from .checkpoint import save_checkpoint
from .errors import BadInputError, first_line
from .models.registry import build_model, arch_names
from .fileio import check_output_path

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


@dataclass
class TrainSettings:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    label_smoothing: float = 0.1
    seed: int = 0


DEFAULT_SETTINGS = {
    "digits": TrainSettings(epochs=20, batch_size=64, lr=1e-2, weight_decay=0.01),
    # official recipes (spikingformer.md section 6); mixup/RandAugment are not reproduced here
    "cifar10": TrainSettings(epochs=400, batch_size=64, lr=5e-4, weight_decay=0.06),
    "cifar100": TrainSettings(epochs=400, batch_size=64, lr=5e-4, weight_decay=0.06),
    "imagenet": TrainSettings(epochs=310, batch_size=36, lr=5e-4, weight_decay=0.05),
}


def dataset_for_arch(arch: str) -> str:
    if "cifar100" in arch:
        return "cifar100"
    if "cifar10dvs" in arch or "gesture" in arch:
        return "dvs"
    if "cifar10" in arch:
        return "cifar10"
    if "imagenet" in arch:
        return "imagenet"
    return "digits"


def digits_split() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fixed digits split: (x_train [1437,1,8,8], y_train, x_test [360,1,8,8], y_test), standardised."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, random_state=DIGITS_SPLIT_SEED, stratify=y
    )
    mean, std = float(x_tr.mean()), float(x_tr.std())
    x_tr = (x_tr - mean) / std
    x_te = (x_te - mean) / std
    return (torch.from_numpy(x_tr).unsqueeze(1), torch.from_numpy(y_tr),
            torch.from_numpy(x_te).unsqueeze(1), torch.from_numpy(y_te))


def _image_loaders(dataset: str, root: Path, batch_size: int, distributed: bool):
    import torchvision
    from torchvision import transforms as T

    if not root.is_dir():
        raise BadInputError(f"{root}: data folder not found")
    try:
        if dataset in ("cifar10", "cifar100"):
            mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
            tr = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
            te = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
            cls = torchvision.datasets.CIFAR10 if dataset == "cifar10" else torchvision.datasets.CIFAR100
            train_set = cls(str(root), train=True, transform=tr, download=False)
            test_set = cls(str(root), train=False, transform=te, download=False)
        elif dataset == "imagenet":
            mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
            tr = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)])
            te = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                            T.ToTensor(), T.Normalize(mean, std)])
            train_set = torchvision.datasets.ImageFolder(str(root / "train"), transform=tr)
            test_set = torchvision.datasets.ImageFolder(str(root / "val"), transform=te)
        else:
            raise BadInputError(f"training on {dataset!r} data is not supported by 'neurodeploy train'")
    except (RuntimeError, FileNotFoundError) as exc:
        msg = first_line(exc)
        raise BadInputError(f"{root}: cannot read {dataset} data ({msg})") from None
    sampler = torch.utils.data.distributed.DistributedSampler(train_set) if distributed else None
    workers = min(8, os.cpu_count() or 1)
    train = torch.utils.data.DataLoader(train_set, batch_size=batch_size, shuffle=sampler is None, sampler=sampler,
                                        num_workers=workers, drop_last=True, pin_memory=torch.cuda.is_available())
    test = torch.utils.data.DataLoader(test_set, batch_size=batch_size, shuffle=False, num_workers=workers)
    return train, test, sampler


def _tensor_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None):
    idx = torch.randperm(len(x), generator=generator) if generator is not None else torch.arange(len(x))
    for i in range(0, len(x), batch_size):
        j = idx[i:i + batch_size]
        yield x[j], y[j]


@torch.no_grad()
def evaluate(model: nn.Module, batches, device: torch.device) -> float:
    model.eval()
    correct = total = 0
    for xb, yb in batches:
        out = model(xb.to(device))
        correct += int((out.argmax(1).cpu() == yb).sum())
        total += len(yb)
    return correct / max(total, 1)


def digits_test_accuracy(model: nn.Module) -> float:
    _, _, x_te, y_te = digits_split()
    return evaluate(model, _tensor_batches(x_te, y_te, 256, None), torch.device("cpu"))


def check_device(device: str | None, option: str = "--device") -> None:
    """A torch device name that exists here (cpu, cuda[:N] when CUDA is available, mps when available)."""
    if device is None:
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise BadInputError(f"{option} {device!r}: {first_line(exc)}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BadInputError(f"{option} {device!r}: no CUDA device is available")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BadInputError(f"{option} {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise BadInputError(f"{option} {device!r}: MPS is not available")
    elif dev.type != "cpu":
        raise BadInputError(f"{option} {device!r}: use cpu or cuda")


def check_train_options(arch, out, epochs, batch_size, lr, seed=0, device=None) -> None:
    """Every training option checked before any data is read or a model built."""
    if arch not in arch_names():
        raise BadInputError(f"unknown architecture {arch!r}; known: {', '.join(arch_names())}")
    for name, v in (("epochs", epochs), ("batch size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10**7:
            raise BadInputError(f"{name} must be an integer in [1, 10000000], got {v!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= 10:
        raise BadInputError(f"lr must be a finite number in (0, 10], got {lr!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise BadInputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    check_device(device)
    check_output_path(out)


def train(arch: str = "spikingformer-digits", out: str | os.PathLike = "demo-out/spikingformer-digits.pt",
          data: str | None = None, epochs: int | None = None, batch_size: int | None = None,
          lr: float | None = None, seed: int = 0, device: str | None = None, progress: bool = True) -> dict:
    """Train ``arch`` and save our checkpoint to ``out``; returns the metrics dict."""
    dataset = dataset_for_arch(arch)
    if dataset == "dvs":
        raise BadInputError(f"training {arch} (event data) is not supported by 'neurodeploy train' yet")
    s = DEFAULT_SETTINGS[dataset]
    epochs = s.epochs if epochs is None else epochs
    batch_size = s.batch_size if batch_size is None else batch_size
    lr = s.lr if lr is None else lr
    check_train_options(arch, out, epochs, batch_size, lr, seed, device)

    distributed = "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1
    rank = 0
    if distributed:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
        local = int(os.environ.get("LOCAL_RANK", 0))
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
    dev = torch.device(device or (f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"))

    torch.manual_seed(seed)
    model = build_model(arch).to(dev)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=s.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)

    if dataset == "digits":
        if data is not None:
            raise BadInputError("the digits data set is bundled with scikit-learn; --data is for CIFAR/ImageNet")
        x_tr, y_tr, x_te, y_te = digits_split()
        gen = torch.Generator().manual_seed(seed)
        steps_per_epoch = math.ceil(len(x_tr) / batch_size)

        def train_batches(_epoch):
            return _tensor_batches(x_tr, y_tr, batch_size, gen)

        def test_batches():
            return _tensor_batches(x_te, y_te, 256, None)
    else:
        if data is None:
            raise BadInputError(f"training {arch} needs --data DIR (a local {dataset} folder)")
        train_loader, test_loader, sampler = _image_loaders(dataset, Path(data), batch_size, distributed)
        steps_per_epoch = len(train_loader)

        def train_batches(epoch):
            if sampler is not None:
                sampler.set_epoch(epoch)
            return train_loader

        def test_batches():
            return test_loader

    total_steps = epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.1)
    bar = tqdm(total=total_steps, desc=f"train {arch}", unit="step", disable=not progress or rank != 0)
    t0 = time.time()
    for epoch in range(epochs):
        net.train()
        for xb, yb in train_batches(epoch):
            xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
            loss = criterion(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
    bar.close()
    acc = evaluate(model, test_batches(), dev)
    metrics = {"test_accuracy": acc, "dataset": dataset, "epochs": epochs, "train_seconds": round(time.time() - t0, 1)}
    if rank == 0:
        model.cpu().eval()
        save_checkpoint(model, out, metrics)
    if distributed:
        torch.distributed.destroy_process_group()
    return metrics
