"""Benchmark: our multi-step LIF against the neuron the official Spikingformer code uses.

Reference: SpikingJelly 0.0.0.0.14, ``clock_driven.neuron.MultiStepLIFNode(tau=2.0, detach_reset=True,
backend='torch')`` (a benchmark-only dependency: ``make bench`` installs it with ``--no-deps``).

Measured in one run, torch's thread count left as it is, median of several interleaved repeats:

1. the LIF alone on a [4, 8, 384, 64] input: forward (no grad) and forward + backward; spikes must be
   identical, input gradients close;
2. the whole ``spikingformer-cifar10-4-384`` forward (eval, T=4, batch 8) with our LIF against the same
   model with every ``MultiStepLIF`` swapped for SpikingJelly's node; logits must be equal.

Prints one JSON object on stdout.  Exit code 1 if spikes, gradients or logits disagree, 2 if SpikingJelly
is missing.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import resource
import statistics
import sys
import time

import torch

import neurodeploy
from neurodeploy import build_model
from neurodeploy.models.neuron import MultiStepLIF


def _import_spikingjelly():
    # spikingjelly prints notices about optional packages on stdout; keep stdout for the JSON
    with contextlib.redirect_stdout(sys.stderr):
        try:
            import spikingjelly
            from spikingjelly.clock_driven import functional, neuron
        except ImportError:
            sys.stderr.write(
                "bench_lif: error: spikingjelly is not installed; run 'make bench' "
                "(pip install spikingjelly==0.0.0.0.14 --no-deps)\n"
            )
            raise SystemExit(2)
    return spikingjelly, neuron, functional


def _interleaved(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """(median, min) seconds per call of each function, calls interleaved so that load changes hit all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: (statistics.median(v), min(v)) for k, v in times.items()}


def _timing(t: dict) -> dict:
    """Medians (the figures) and minima (less sensitive to other load on a shared machine)."""
    (ours, ours_min), (sj, sj_min) = t["ours"], t["sj"]
    return {
        "neurodeploy_ms": round(ours * 1e3, 3),
        "spikingjelly_ms": round(sj * 1e3, 3),
        "speedup": round(sj / ours, 2),
        "neurodeploy_min_ms": round(ours_min * 1e3, 3),
        "spikingjelly_min_ms": round(sj_min * 1e3, 3),
        "speedup_of_minima": round(sj_min / ours_min, 2),
    }


def bench_lif(sj_neuron, repeats: int) -> tuple[dict, bool]:
    shape = (4, 8, 384, 64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen) * 1.5 + 0.5
    grad_out = torch.randn(shape, generator=gen)
    ours = MultiStepLIF(tau=2.0)
    sj = sj_neuron.MultiStepLIFNode(tau=2.0, detach_reset=True, backend="torch")

    def fwd_ours():
        return ours(x)

    def fwd_sj():
        sj.reset()
        return sj(x)

    def fb_ours():
        xg = x.detach().requires_grad_()
        out = ours(xg)
        out.backward(grad_out)
        return out, xg.grad

    def fb_sj():
        sj.reset()
        xg = x.detach().requires_grad_()
        out = sj(xg)
        out.backward(grad_out)
        return out, xg.grad

    with torch.no_grad():
        s_ours, s_sj = fwd_ours(), fwd_sj()
        t_fwd = _interleaved({"ours": fwd_ours, "sj": fwd_sj}, repeats)
    (o_ours, g_ours), (o_sj, g_sj) = fb_ours(), fb_sj()
    t_fb = _interleaved({"ours": fb_ours, "sj": fb_sj}, repeats)

    spikes_identical = torch.equal(s_ours, s_sj) and torch.equal(o_ours.detach(), o_sj.detach())
    grad_close = torch.allclose(g_ours, g_sj, rtol=1e-5, atol=1e-6)
    result = {
        "input_shape": list(shape),
        "spike_rate": round(float(s_sj.mean()), 4),
        "spikes_identical": spikes_identical,
        "grad_max_abs_diff": float((g_ours - g_sj).abs().max()),
        "grad_allclose_rtol1e-5_atol1e-6": grad_close,
        "forward_no_grad": _timing(t_fwd),
        "forward_backward": _timing(t_fb),
    }
    return result, spikes_identical and grad_close


def _swap_lifs(model: torch.nn.Module, sj_neuron) -> int:
    """Replace every MultiStepLIF in ``model`` by SpikingJelly's node with the same tau and threshold."""
    swapped = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, MultiStepLIF):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            node = sj_neuron.MultiStepLIFNode(
                tau=module.tau, v_threshold=module.v_threshold, detach_reset=True, backend="torch"
            )
            setattr(parent, child, node)
            swapped += 1
    return swapped


def _calibrate_bn(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of one pass over ``x`` and switch to eval.

    With freshly initialised running statistics (mean 0, var 1) the untrained model's LIFs hardly fire
    (rate ~0.0004), which would make the comparison trivial; normalised BN outputs make them fire at a
    realistic rate."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
    model.train()
    with torch.no_grad():
        model(x)
    model.eval()


def bench_model(sj_neuron, sj_functional, repeats: int) -> tuple[dict, bool]:
    arch = "spikingformer-cifar10-4-384"
    torch.manual_seed(0)
    ours = build_model(arch)
    x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    _calibrate_bn(ours, x)
    theirs = copy.deepcopy(ours)
    n_lif = _swap_lifs(theirs, sj_neuron)
    if any(isinstance(m, MultiStepLIF) for m in theirs.modules()):
        raise RuntimeError("a MultiStepLIF was left in the SpikingJelly copy")

    spikes = {"n": 0, "total": 0}

    def count(_module, _inp, out):
        spikes["n"] += int(out.sum())
        spikes["total"] += out.numel()

    def fwd_ours():
        return ours(x)

    def fwd_sj():
        sj_functional.reset_net(theirs)
        return theirs(x)

    with torch.no_grad():
        hooks = [m.register_forward_hook(count) for m in ours.modules() if isinstance(m, MultiStepLIF)]
        logits_ours = fwd_ours()
        for h in hooks:
            h.remove()
        logits_sj = fwd_sj()
        t = _interleaved({"ours": fwd_ours, "sj": fwd_sj}, repeats, warmup=1)
    equal = torch.equal(logits_ours, logits_sj)
    result = {
        "arch": arch,
        "T": ours.T if hasattr(ours, "T") else 4,
        "batch": x.shape[0],
        "lif_modules_swapped": n_lif,
        "mean_spike_rate": round(spikes["n"] / max(spikes["total"], 1), 4),
        "logits_equal": equal,
        "logits_max_abs_diff": float((logits_ours - logits_sj).abs().max()),
        "forward_no_grad": _timing(t),
    }
    return result, equal


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=41, help="timed repeats for the LIF alone (median)")
    parser.add_argument("--model-repeats", type=int, default=5, help="timed repeats for the whole model")
    parser.add_argument("--no-model", action="store_true", help="skip the whole-model comparison")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N) first (default: leave torch's setting as it is)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    spikingjelly, sj_neuron, sj_functional = _import_spikingjelly()
    out = {
        "benchmark": "lif",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "neurodeploy": neurodeploy.__version__,
        "spikingjelly": getattr(spikingjelly, "__version__", None) or _dist_version("spikingjelly"),
        "reference": "spikingjelly.clock_driven.neuron.MultiStepLIFNode(tau=2.0, detach_reset=True, backend='torch')",
    }
    ok = True
    out["lif"], lif_ok = bench_lif(sj_neuron, args.repeats)
    ok &= lif_ok
    if not args.no_model:
        out["model"], model_ok = bench_model(sj_neuron, sj_functional, args.model_repeats)
        ok &= model_ok
    out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out["ok"] = bool(ok)
    print(json.dumps(out, indent=2))
    return 0 if ok else 1


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main())
