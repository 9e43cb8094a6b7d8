"""Shared helpers for the export / graph tests: random models with non-trivial BN statistics, LIF hooks."""
from __future__ import annotations

from simresults import assert_records_equal
import torch

import neurodeploy
from neurodeploy.models.neuron import MultiStepLIF


def random_model(arch: str, img: int | None = None, T: int | None = None, seed: int = 0, calib_batch: int = 4,
                 config: dict | None = None):
    """An eval-mode model (``config``: fields overriding the architecture's) with random weights and BN
    statistics that are non-trivial (running mean/var measured on random data, then gamma in [1, 2],
    beta ~ N(1, 0.5)) so that every LIF fires."""
    torch.manual_seed(seed)
    model = neurodeploy.build_model(arch, config)
    cfg = model.cfg
    if T is not None and cfg.T is not None:
        model.T = cfg.T = T
    g = torch.Generator().manual_seed(seed + 1)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    for m in bns:
        m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 1.0)
        m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.5 + 1.0)
        m.momentum = None  # cumulative average: one batch -> running stats = that batch's stats
        m.reset_running_stats()
    x = random_input(model, img, T, batch=calib_batch, seed=seed + 2)
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def random_input(model, img: int | None = None, T: int | None = None, batch: int = 2, seed: int = 3):
    cfg = model.cfg
    img = img or cfg.img_size
    g = torch.Generator().manual_seed(seed)
    if getattr(cfg, "event_input", False):
        return torch.randint(0, 3, (batch, T or 2, cfg.in_channels, img, img), generator=g).float()
    return torch.randn(batch, cfg.in_channels, img, img, generator=g)


def lif_outputs(model, x):
    """Run ``model`` on ``x`` and return (logits, {module path: spikes [T, B, ...]}) from forward hooks."""
    out: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, i, o, name=name: out.__setitem__(name, o.detach().clone()))
               for name, m in model.named_modules() if isinstance(m, MultiStepLIF)]
    try:
        with torch.no_grad():
            logits = model(x)
    finally:
        for h in handles:
            h.remove()
    return logits, out


def lava_equals_engine(net, inputs, steps):
    """Run the lowered ``net`` in our engine and in Lava for ``steps`` steps, every population recorded; assert
    they are equal (every recorded variable: s, u, v, at every step) and return our engine's records."""
    from neurodeploy.lava.run import run_lava
    from neurodeploy.sim import simulate
    ours = simulate(net, inputs, steps, record="all")
    lava = run_lava(net, inputs, steps, record="all")
    assert_records_equal(ours, lava, set(lava))
    return ours
