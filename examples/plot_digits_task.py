"""Draw docs/img/digits-task.png: a few test samples of each rendering of the bundled digits task
(neurodeploy.tasks; docs/data.md).  Run: python examples/plot_digits_task.py [OUT.png]"""
from __future__ import annotations

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neurodeploy import tasks  # noqa: E402


def main(out: str = "docs/img/digits-task.png", n: int = 6) -> None:
    idx = range(n)
    x8, y = tasks.task_samples((1, 8, 8), "test", indices=idx)
    x32, _ = tasks.task_samples((3, 32, 32), "test", indices=idx)
    x224, _ = tasks.task_samples((3, 224, 224), "test", indices=idx)
    ev, _ = tasks.task_samples((2, 128, 128), "test", indices=idx)
    T = ev.shape[1]
    rows = [("8x8 (digits models)", lambda i: (x8[i, 0], "gray")),
            ("3x32x32 (CIFAR)", lambda i: (x32[i].transpose(1, 2, 0), None)),
            ("3x224x224 (ImageNet)", lambda i: (x224[i].transpose(1, 2, 0), None))]
    # events: all T bins summed, ON red and OFF blue; then the bins of sample 0 one by one
    def events_rgb(e):
        on, off = e[:, 0].sum(0), e[:, 1].sum(0)
        top = max(1.0, float(np.percentile(np.concatenate([on.ravel(), off.ravel()]), 99.5)))
        return np.stack([np.clip(on / top, 0, 1), np.zeros_like(on), np.clip(off / top, 0, 1)], 2)

    rows.append((f"[{T},2,128,128] events (sum of bins)", lambda i: (events_rgb(ev[i]), None)))
    ncol = max(n, T)
    fig, axes = plt.subplots(len(rows) + 1, ncol, figsize=(1.6 * ncol, 1.75 * (len(rows) + 1)))
    for r, (title, get) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r, c]
            ax.axis("off")
            if c < n:
                img, cmap = get(c)
                ax.imshow(img, cmap=cmap, interpolation="nearest")
                ax.set_title(f"label {y[c]}", fontsize=7)
        axes[r, 0].text(-0.1, 0.5, title, transform=axes[r, 0].transAxes, ha="right", va="center", fontsize=8)
    for t in range(ncol):
        ax = axes[-1, t]
        ax.axis("off")
        if t < T:
            ax.imshow(events_rgb(ev[0, t:t + 1]), interpolation="nearest")
            ax.set_title(f"sample 0, bin {t}", fontsize=7)
    fig.subplots_adjust(left=0.17, right=0.99, top=0.95, bottom=0.01, wspace=0.05, hspace=0.35)
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:2])
