"""Training: the digits demo model on CPU, and the official recipes' data sets from a local folder.

* ``digits``: scikit-learn's bundled 8x8 digits (1797 images), fixed stratified split
  (80/20, ``random_state=0``: 1437 train / 360 test), pixels scaled to [0, 1] and standardised with
  the training-set mean/std.  This is the demo: >= 93 % test accuracy in minutes on 2 cores.
* ``--data digits`` for any other architecture: the same split rendered at its input (32x32 / 224x224
  images, [T, 2, 128, 128] events; :mod:`neurodeploy.tasks`, docs/data.md), with ``--max-minutes`` (a time
  budget the learning-rate schedule spans), a checkpoint written every minute and ``--resume``.
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

import torch
from torch import nn
from tqdm import tqdm

from . import tasks
from .checkpoint import _torch_load, save_checkpoint
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
    # the digits task rendered at a full-size architecture's input (neurodeploy.tasks): small batches, many
    # steps (a CPU sees a few hundred to a few thousand samples in 30 minutes)
    "digits-rendered": TrainSettings(epochs=30, batch_size=16, lr=1e-3, weight_decay=0.01),
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
    """The fixed digits split: (x_train [1437,1,8,8], y_train, x_test [360,1,8,8], y_test), standardised
    (:func:`neurodeploy.tasks.digits_split`)."""
    return tasks.digits_split()


def model_input_shape(model: nn.Module) -> tuple[int, ...]:
    """The model's input per sample and step: [C, H, W] (Spikingformer configs), else the digits' [1, 8, 8]."""
    cfg = getattr(model, "cfg", None)
    if cfg is not None and hasattr(cfg, "in_channels") and hasattr(cfg, "img_size"):
        return (int(cfg.in_channels), int(cfg.img_size), int(cfg.img_size))
    return (1, 8, 8)


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


def _ahead(batches):
    """The items of ``batches`` in order, the next one made by a worker thread while the caller uses this
    one: the digits task renders its batches on the CPU, and on a GPU that overlaps the training step
    (numpy's generators and torch release the GIL).  Closing early waits for the item in flight."""
    from concurrent.futures import ThreadPoolExecutor
    it = iter(batches)
    end = object()
    pool = ThreadPoolExecutor(1, thread_name_prefix="neurodeploy-batches")
    try:
        fut = pool.submit(next, it, end)
        while True:
            item = fut.result()
            if item is end:
                return
            fut = pool.submit(next, it, end)
            yield item
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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


def check_train_options(arch, out, epochs, batch_size, lr, seed=0, device=None, max_minutes=None) -> None:
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
    if max_minutes is not None and (isinstance(max_minutes, bool) or not isinstance(max_minutes, (int, float))
                                    or not math.isfinite(max_minutes) or not 0 < max_minutes <= 10**6):
        raise BadInputError(f"--max-minutes must be a number of minutes in (0, 1000000], got {max_minutes!r}")
    check_device(device)
    check_output_path(out)


def lr_at(progress: float, lr: float) -> float:
    """The learning rate at ``progress`` in [0, 1] of a time-budgeted run (--max-minutes: progress is the
    time spent): torch's OneCycleLR shape (cosine warm-up from lr/25 over the first 10 %, cosine decay to
    lr/25/1e4), over time instead of steps."""
    p = min(max(progress, 0.0), 1.0)
    lo, end = lr / 25, lr / 25 / 1e4
    if p < 0.1:
        return lr + (lo - lr) / 2 * (math.cos(math.pi * p / 0.1) + 1)
    return end + (lr - end) / 2 * (math.cos(math.pi * (p - 0.1) / 0.9) + 1)


def _resume_state(out: Path, arch: str, options: dict) -> dict:
    """The train_state of the checkpoint at ``out`` (--resume): same architecture and options, not finished."""
    obj = _torch_load(out)
    st = obj.get("train_state") if isinstance(obj, dict) else None
    if not isinstance(st, dict):
        raise BadInputError(f"{out}: --resume: the checkpoint holds no training state (not written by "
                            f"'neurodeploy train', or already finished)")
    if obj.get("arch") != arch:
        raise BadInputError(f"{out}: --resume: the checkpoint holds {obj.get('arch')!r}, not {arch!r}")
    saved = st.get("options", {})
    for k, v in options.items():
        if k in ("max_minutes", "epochs"):       # the budget may change on resume
            continue
        if k in saved and saved[k] != v:
            raise BadInputError(f"{out}: --resume: the checkpoint was trained with {k} {saved.get(k)!r}, "
                                f"not {v!r}")
    st["state_dict"] = obj.get("state_dict")
    return st


def train(arch: str = "spikingformer-digits", out: str | os.PathLike = "demo-out/spikingformer-digits.pt",
          data: str | None = None, epochs: int | None = None, batch_size: int | None = None,
          lr: float | None = None, seed: int = 0, device: str | None = None, progress: bool = True,
          max_minutes: float | None = None, resume: bool = False, max_steps: int | None = None,
          save_every_s: float = 60.0, config: dict | None = None) -> dict:
    """Train ``arch`` and save our checkpoint to ``out``; returns the metrics dict.

    ``data``: ``"digits"`` (the bundled task at the architecture's input, :mod:`neurodeploy.tasks`; the
    default of the digits models) or a local CIFAR/ImageNet folder.  ``max_minutes``: stop training after
    that many minutes (the learning-rate schedule runs over that time; with ``epochs`` too, whichever
    comes first).  On the digits task the checkpoint is written every ``save_every_s`` seconds, on Ctrl-C
    and at the end with the optimizer state and position (``train_state``), and ``resume`` continues from
    it mid-epoch: the same batches in the same order, the same renderings.  ``max_steps``: stop after that
    many optimizer steps in this call (leaving a resumable checkpoint).  ``config``: fields of the
    architecture's config to override (a reduced model for tests; saved in the checkpoint)."""
    dataset = dataset_for_arch(arch)
    task = data == tasks.TASK or (data is None and dataset == "digits")
    if dataset == "dvs" and not task:
        raise BadInputError(f"training {arch} on event data needs --data digits (the bundled task); "
                            f"event folders are not read by 'neurodeploy train' yet")
    key = ("digits" if dataset == "digits" else "digits-rendered") if task else dataset
    s = DEFAULT_SETTINGS[key]
    if max_minutes is not None and epochs is None and task:
        epochs = 10 ** 6                        # the time budget ends the run
    epochs = s.epochs if epochs is None else epochs
    batch_size = s.batch_size if batch_size is None else batch_size
    lr = s.lr if lr is None else lr
    check_train_options(arch, out, epochs, batch_size, lr, seed, device, max_minutes)
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise BadInputError(f"max steps must be an integer >= 1, got {max_steps!r}")
    if resume and not task:
        raise BadInputError("--resume: resuming is supported on the bundled digits task (--data digits)")
    out = Path(out)

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
    model = build_model(arch, config)
    options = {"arch": arch, "data": "digits" if task else str(data), "batch_size": batch_size, "lr": lr,
               "seed": seed, "weight_decay": s.weight_decay, "epochs": epochs, "max_minutes": max_minutes,
               "config": model.cfg.to_dict()}
    state = _resume_state(out, arch, options) if resume else None
    if state is not None:
        model.load_state_dict(state["state_dict"])
    model = model.to(dev)
    net = nn.parallel.DistributedDataParallel(model) if distributed else model
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=s.weight_decay)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    criterion = nn.CrossEntropyLoss(label_smoothing=s.label_smoothing)

    epoch_gen = [None, None]          # the permutation generator's state at the start of the epoch drawn last
    if task:
        if distributed:
            raise BadInputError("the digits task trains in one process (no torchrun)")
        shape = model_input_shape(model)
        n_train = tasks.task_size("train")
        steps_per_epoch = math.ceil(n_train / batch_size)
        gen = torch.Generator().manual_seed(seed)       # one permutation per epoch, drawn in turn
        x8 = digits_split() if tasks.task_kind(shape) == "digits8" else None
        if state is not None:
            gen.set_state(state["generator"])           # as it was at the start of the saved epoch

        def train_batches(epoch, skip=0):
            epoch_gen[:] = [gen.get_state(), epoch]
            perm = torch.randperm(n_train, generator=gen)
            for b in range(skip, steps_per_epoch):
                idx = perm[b * batch_size:(b + 1) * batch_size]
                if x8 is not None:
                    yield x8[0][idx], x8[1][idx]
                    continue
                xb, yb = tasks.task_samples(shape, "train", epoch=epoch, indices=idx.numpy())
                yield torch.from_numpy(xb), torch.from_numpy(yb)

        def test_batches():
            x_te, y_te = tasks.task_samples(shape, "test")
            return _tensor_batches(torch.from_numpy(x_te), torch.from_numpy(y_te), 32, None)
    else:
        if data is None:
            raise BadInputError(f"training {arch} needs --data DIR (a local {dataset} folder) or --data digits")
        train_loader, test_loader, sampler = _image_loaders(dataset, Path(data), batch_size, distributed)
        steps_per_epoch = len(train_loader)

        def train_batches(epoch, skip=0):
            if sampler is not None:
                sampler.set_epoch(epoch)
            return train_loader

        def test_batches():
            return test_loader

    total_steps = epochs * steps_per_epoch
    budget_s = None if max_minutes is None else 60.0 * max_minutes
    epoch0, skip0 = (int(state["epoch"]), int(state["batch"])) if state else (0, 0)
    step = int(state["step"]) if state else 0
    done_s = float(state["elapsed_s"]) if state else 0.0

    # step-based runs: torch's OneCycleLR (the digits demo's recipe); time-based (--max-minutes): lr_at
    sched = None
    if budget_s is None:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total_steps, pct_start=0.1)
        if state is not None and state.get("scheduler"):
            sched.load_state_dict(state["scheduler"])
            # the scheduler's constructor set the learning rate and momentum (Adam's beta1) back to their
            # start: restore the saved ones
            for g, saved in zip(opt.param_groups, state["optimizer"]["param_groups"]):
                g.update({k: saved[k] for k in ("lr", "betas", "momentum") if k in saved})

    def progress_of(step_now, elapsed):
        p = step_now / total_steps
        return max(p, elapsed / budget_s) if budget_s else p

    def snapshot(epoch, batch, elapsed, finished=False, acc=None):
        if rank != 0:
            return
        metrics = {"test_accuracy": acc, "dataset": "digits" if task else dataset, "steps": step,
                   "epochs": round(step / steps_per_epoch, 3), "train_seconds": round(elapsed, 1),
                   "finished": bool(finished), "batch_size": batch_size}
        if task:
            metrics["task"] = tasks.TASK
            metrics["input"] = list(shape)
            if tasks.task_kind(shape) == "events":
                metrics["time_steps"] = tasks.EVENT_STEPS
        train_state = None if (finished == "epochs" or not task) else {
            "epoch": epoch, "batch": batch, "step": step, "elapsed_s": float(elapsed), "options": options,
            "optimizer": opt.state_dict(), "generator": epoch_gen[0] if epoch_gen[1] == epoch else gen.get_state(),
            "scheduler": None if sched is None else sched.state_dict()}
        was_training = model.training
        save_checkpoint(model, out, metrics, train_state=train_state)
        model.train(was_training)
        return metrics

    bar_total = total_steps if budget_s is None else None
    bar = tqdm(total=bar_total, initial=step, desc=f"train {arch}", unit="step", disable=not progress or rank != 0)
    t_start = time.time()
    last_save = t_start
    elapsed = done_s
    stopped_by = "epochs"
    epoch, b = epoch0, skip0
    try:
        for epoch in range(epoch0, epochs):
            net.train()
            b = skip0 if epoch == epoch0 else 0
            batches = train_batches(epoch, b)
            for xb, yb in (_ahead(batches) if task and dev.type != "cpu" else batches):
                elapsed = done_s + time.time() - t_start
                if budget_s is not None and elapsed >= budget_s:
                    stopped_by = "time"
                    break
                if max_steps is not None and step - (int(state["step"]) if state else 0) >= max_steps:
                    stopped_by = "steps"
                    break
                if sched is None:
                    for g in opt.param_groups:
                        g["lr"] = lr_at(progress_of(step, elapsed), lr)
                xb, yb = xb.to(dev, non_blocking=True), yb.to(dev, non_blocking=True)
                loss = criterion(net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if sched is not None:
                    sched.step()
                step += 1
                b += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}",
                                **({"min": f"{elapsed / 60:.1f}/{max_minutes:g}"} if budget_s else {}))
                if task and time.time() - last_save >= save_every_s:
                    snapshot(epoch, b, done_s + time.time() - t_start)
                    last_save = time.time()
            if stopped_by != "epochs":
                break
            b = 0
        else:
            epoch = epochs
    except KeyboardInterrupt:
        bar.close()
        if task:
            snapshot(epoch, b, done_s + time.time() - t_start)
            raise BadInputError(f"interrupted; {out} holds the training state: continue with --resume") from None
        raise
    bar.close()
    elapsed = done_s + time.time() - t_start
    if stopped_by == "steps":
        snapshot(epoch if b < steps_per_epoch else epoch + 1, b if b < steps_per_epoch else 0, elapsed)
        return {"test_accuracy": None, "dataset": "digits" if task else dataset, "steps": step,
                "epochs": round(step / steps_per_epoch, 3), "train_seconds": round(elapsed, 1), "finished": False}
    acc = evaluate(model, test_batches(), dev)
    metrics = {"test_accuracy": acc, "dataset": "digits" if task else dataset, "steps": step,
               "epochs": round(step / steps_per_epoch, 3), "train_seconds": round(elapsed, 1),
               "finished": True, "stopped_by": stopped_by}
    if rank == 0:
        model.cpu().eval()
        # a run stopped by its time budget keeps its training state (--resume with a larger budget extends it)
        metrics = {**snapshot(epoch, b, elapsed, finished=stopped_by, acc=acc), "finished": True,
                   "stopped_by": stopped_by}
    if distributed:
        torch.distributed.destroy_process_group()
    return metrics
