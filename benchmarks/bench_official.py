"""Benchmark: our rebuilds of the spiking-transformer families against the official model code.

For every family whose official checkout is given with ``--repo NAME=PATH`` (a local checkout, e.g.
``git -C MIRROR worktree add /tmp/spikformer`` or ``git archive HEAD | tar -x -C /tmp/spikformer``) and
every variant of that family:

1. import the official model file from the checkout, with SpikingJelly's ``MultiStepLIFNode`` (and the
   other neuron classes the file imports) replaced by a subclass that forces ``backend='torch'`` (the
   official code asks for ``cupy``, which needs CUDA; both backends compute the same equations);
2. build the official model with the variant's official constructor arguments and our rebuild
   (``neurodeploy.build_model``); compare the state_dict keys (order included) and shapes, and the
   parameter counts;
3. make one random state_dict (our rebuild's initialisation, then BN statistics measured on random input
   so that every LIF fires), load it into both with ``strict=True``;
4. run both in eval mode on the same random input (``functional.reset_net`` before each run) and report
   max |logits difference| (the target is 0.0: the rebuilds run the same tensor operations in the same
   layout).

Benchmark-only dependencies (never imported by the package or the tests): SpikingJelly 0.0.0.0.14
(``pip install spikingjelly==0.0.0.0.14 --no-deps``; its ``clock_driven`` package still holds the old
``MultiStepLIFNode``) and timm (the official files import ``timm.models.layers`` / ``registry``; timm 0.6.12,
the version the repositories pin, fails to import on Python 3.11; 0.9.16 works: ``pip install timm==0.9.16
--no-deps``).  Families: ``spikformer`` (ZK-Zhou/spikformer), ``sdt`` (BICLab/Spike-Driven-Transformer), ``qkformer``
(zhouchenlin2096/QKFormer), ``sdtv2`` (BICLab/Spike-Driven-Transformer-V2; its ``models.py`` also imports
torchinfo and einops: ``pip install torchinfo einops --no-deps``).

Prints one JSON object on stdout; exit code 1 if any difference is not 0.0 or a state_dict differs, 2 on
bad arguments or missing dependencies.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

from neurodeploy import build_model


def _spikingjelly():
    with contextlib.redirect_stdout(sys.stderr):  # it prints notices about optional packages
        try:
            from spikingjelly.clock_driven import functional, neuron
        except ImportError:
            sys.stderr.write("bench_official: error: spikingjelly is not installed "
                             "(pip install spikingjelly==0.0.0.0.14 --no-deps)\n")
            raise SystemExit(2)
    return neuron, functional


def _force_torch_backend(neuron) -> None:
    """Replace the multi-step neuron classes by subclasses that ignore ``backend='cupy'``."""
    for name in ("MultiStepLIFNode", "MultiStepParametricLIFNode"):
        base = getattr(neuron, name, None)
        if base is None or getattr(base, "_bench_forced", False):
            continue

        def init(self, *args, _base=base, **kwargs):
            kwargs["backend"] = "torch"
            _base.__init__(self, *args, **kwargs)

        cls = type(name, (base,), {"__init__": init, "_bench_forced": True})
        setattr(neuron, name, cls)


def _import_file(path: Path, module_name: str, extra_paths=()):
    if not path.is_file():
        raise SystemExit(f"bench_official: error: {path}: no such file (is --repo the checkout's root?)")
    old = list(sys.path)
    sys.path[:0] = [str(p) for p in extra_paths]
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = mod  # timm's register_model looks the module up
        with contextlib.redirect_stdout(sys.stderr):
            spec.loader.exec_module(mod)
    except ImportError as exc:
        sys.stderr.write(f"bench_official: error: importing {path}: {exc} (the official files need timm==0.9.16 and einops: pip install --no-deps)\n")
        raise SystemExit(2)
    finally:
        sys.path[:] = old
    return mod


# ---------------------------------------------------------------------------------------------- families
def _spikformer(repo: Path):
    cifar = _import_file(repo / "cifar10" / "model.py", "official_spikformer_cifar10")
    imnet = _import_file(repo / "imagenet" / "model.py", "official_spikformer_imagenet")
    from functools import partial

    from torch import nn

    def cifar_model():  # cifar10/train.py create_model('spikformer', ...) with cifar10.yml
        return cifar.Spikformer(img_size_h=32, img_size_w=32, patch_size=4, embed_dims=384, num_heads=12,
                                mlp_ratios=4, in_channels=3, num_classes=10, qkv_bias=False, depths=4,
                                sr_ratios=1, T=4)

    def imagenet_model(D):  # imagenet/model.py's registered spikformer() with embed_dims D
        return imnet.Spikformer(img_size_h=224, img_size_w=224, patch_size=16, embed_dims=D, num_heads=8,
                                mlp_ratios=4, in_channels=3, num_classes=1000, qkv_bias=False,
                                norm_layer=partial(nn.LayerNorm, eps=1e-6), depths=8, sr_ratios=1)

    return [
        ("spikformer-cifar10-4-384", cifar_model, (3, 32)),
        ("spikformer-imagenet-8-384", lambda: imagenet_model(384), (3, 224)),
        ("spikformer-imagenet-8-512", lambda: imagenet_model(512), (3, 224)),
        ("spikformer-imagenet-8-768", lambda: imagenet_model(768), (3, 224)),
    ]


def _sdt(repo: Path):
    mod = _import_file(repo / "model" / "spikeformer.py", "official_sdt", extra_paths=[repo])

    def make(D, depth, classes, img, stat, in_ch=3):  # train.py create_model(...) with the conf's values
        return mod.SpikeDrivenTransformer(T=4, num_heads=8, num_classes=classes, pooling_stat=stat, img_size_h=img,
                                          img_size_w=img, patch_size=16, embed_dims=D, mlp_ratios=4, in_channels=in_ch,
                                          qkv_bias=False, depths=depth, sr_ratios=1, spike_mode="lif",
                                          dvs_mode=False, TET=False)

    return [
        ("sdt-cifar10-2-512", lambda: make(512, 2, 10, 32, "0011"), (3, 32)),
        ("sdt-cifar10-2-256", lambda: make(256, 2, 10, 32, "0011"), (3, 32)),
        ("sdt-imagenet-8-384", lambda: make(384, 8, 1000, 224, "1111"), (3, 224)),
        ("sdt-imagenet-8-768", lambda: make(768, 8, 1000, 224, "1111"), (3, 224)),
        ("sdt-digits", lambda: make(64, 1, 10, 8, "0010", in_ch=1), (1, 8)),
    ]


def _qkformer(repo: Path):
    cifar = _import_file(repo / "cifar10" / "model.py", "official_qkformer_cifar10")
    imnet = _import_file(repo / "imagenet" / "qkformer.py", "official_qkformer_imagenet")

    def cifar_model(D=384, depth=4, classes=10, img=32, in_ch=3):  # cifar10/train.py create_model("QKFormer", ...)
        return cifar.QKFormer(img_size_h=img, img_size_w=img, patch_size=4, embed_dims=D, num_heads=8, mlp_ratios=4,
                              in_channels=in_ch, num_classes=classes, qkv_bias=False, depths=depth, sr_ratios=1, T=4)

    class FirstStage(torch.nn.Module):
        """The official modules of stage 1 (PatchEmbedInit + TokenSpikingTransformer) in the official order,
        with the official head computation: the digits-size model (num_stages 1)."""

        def __init__(self):
            super().__init__()
            full = cifar_model(D=128, depth=2, classes=10, img=8, in_ch=1)
            self.patch_embed1, self.stage1 = full.patch_embed1, full.stage1
            self.head = torch.nn.Linear(32, 10)

        def forward(self, x):
            x = self.patch_embed1(x.unsqueeze(0).repeat(4, 1, 1, 1, 1))
            for blk in self.stage1:
                x = blk(x)
            return self.head(x.flatten(3).mean(3).mean(0))

    return [
        ("qkformer-cifar10-4-384", cifar_model, (3, 32)),
        ("qkformer-imagenet-10-384", lambda: imnet.QKFormer_10_384(T=4), (3, 224)),
        ("qkformer-digits", FirstStage, (1, 8)),
    ]


def _sdtv2(repo: Path):
    mod = _import_file(repo / "classification" / "models.py", "official_sdtv2")

    class Digits(torch.nn.Module):
        """The official module classes at the digits size, in the official registration order and with the
        official forward (downsample1_1 3x3 stride 1, ConvBlock1_1, downsample1_2, ConvBlock1_2, downsample3
        stride 1, one MS_Block with 4 heads, lif, head): ``sdtv2-digits``."""

        def __init__(self):
            super().__init__()
            self.T = 4
            self.downsample1_1 = mod.MS_DownSampling(1, 8, kernel_size=3, stride=1, padding=1, first_layer=True)
            self.ConvBlock1_1 = torch.nn.ModuleList([mod.MS_ConvBlock(dim=8, mlp_ratio=4)])
            self.downsample1_2 = mod.MS_DownSampling(8, 16, kernel_size=3, stride=2, padding=1, first_layer=False)
            self.ConvBlock1_2 = torch.nn.ModuleList([mod.MS_ConvBlock(dim=16, mlp_ratio=4)])
            self.downsample3 = mod.MS_DownSampling(16, 32, kernel_size=3, stride=1, padding=1, first_layer=False)
            self.block3 = torch.nn.ModuleList([mod.MS_Block(dim=32, num_heads=4, mlp_ratio=4)])
            self.lif = mod.MultiStepLIFNode(tau=2.0, detach_reset=True, backend="cupy")
            self.head = torch.nn.Linear(32, 10)

        def forward(self, x):
            x = x.unsqueeze(0).repeat(self.T, 1, 1, 1, 1)
            for m in (self.downsample1_1, self.ConvBlock1_1[0], self.downsample1_2, self.ConvBlock1_2[0],
                      self.downsample3, self.block3[0]):
                x = m(x)
            return self.head(self.lif(x.flatten(3).mean(3))).mean(0)

    def official(name, kd=False):  # main_finetune.py: models.__dict__[name](kd=...), then model.T = --time_steps 4
        model = getattr(mod, name)(kd=kd)
        model.T = 4
        return model

    return [
        ("sdtv2-imagenet-8-384", lambda: official("metaspikformer_8_384"), (3, 224)),
        ("sdtv2-imagenet-8-512", lambda: official("metaspikformer_8_512"), (3, 224)),
        ("sdtv2-imagenet-8-512-kd", lambda: official("metaspikformer_8_512", kd=True), (3, 224)),
        ("sdtv2-imagenet-8-768", lambda: official("metaspikformer_8_768"), (3, 224)),
        ("sdtv2-digits", Digits, (1, 8)),
    ]


FAMILIES = {"spikformer": _spikformer, "sdt": _sdt, "qkformer": _qkformer, "sdtv2": _sdtv2}


# ---------------------------------------------------------------------------------------------- compare
def _random_state_dict(model, shape, functional, batch: int, seed: int) -> dict:
    """Our rebuild's initialisation, with BN affine parameters and running statistics made non-trivial
    (statistics of one random batch) so that the LIFs fire."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    for m in bns:
        m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 1.0)
        m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.5 + 0.5)
        m.momentum = None
        m.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(batch, *shape, generator=g))
    functional.reset_net(model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _spike_rates(model, x, functional) -> dict:
    """Firing rate of each of our LIFs (to show the comparison is not between silent networks)."""
    from neurodeploy.models.neuron import MultiStepLIF
    rates = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: rates.__setitem__(n, float(o.float().mean())))
             for n, m in model.named_modules() if isinstance(m, MultiStepLIF)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return rates


def compare(arch: str, make_official, in_shape, functional, batch: int, seed: int) -> dict:
    c, side = in_shape
    ours = build_model(arch)
    official = make_official()
    ok = [k for k in official.state_dict()]
    our_keys = list(ours.state_dict())
    shapes_equal = ok == our_keys and all(official.state_dict()[k].shape == ours.state_dict()[k].shape for k in ok)
    row = {
        "arch": arch,
        "official_parameters": sum(p.numel() for p in official.parameters()),
        "our_parameters": sum(p.numel() for p in ours.parameters()),
        "state_dict_keys_equal_in_order": ok == our_keys,
        "state_dict_shapes_equal": bool(shapes_equal),
    }
    if not shapes_equal:
        row["only_official"] = [k for k in ok if k not in our_keys][:10]
        row["only_ours"] = [k for k in our_keys if k not in ok][:10]
        return row
    sd = _random_state_dict(ours, (c, side, side), functional, batch, seed)
    official.load_state_dict(sd, strict=True)
    ours.load_state_dict(sd, strict=True)
    official.eval()
    ours.eval()
    x = torch.randn(batch, c, side, side, generator=torch.Generator().manual_seed(seed + 7))
    t0 = time.perf_counter()
    with torch.no_grad():
        functional.reset_net(official)
        ref = official(x)
        functional.reset_net(official)
        if isinstance(ref, (tuple, list)):
            ref = ref[0]
    t1 = time.perf_counter()
    with torch.no_grad():
        got = ours(x)
    t2 = time.perf_counter()
    rates = _spike_rates(ours, x, functional)
    row.update({
        "input": [batch, c, side, side],
        "max_abs_logit_difference": float((ref - got).abs().max()),
        "logits_equal": bool(torch.equal(ref, got)),
        "logit_scale": float(ref.abs().max()),
        "same_predictions": bool(torch.equal(ref.argmax(-1), got.argmax(-1))),
        "lif_layers": len(rates),
        "silent_lif_layers": sum(1 for r in rates.values() if r == 0.0),
        "mean_firing_rate": round(sum(rates.values()) / max(len(rates), 1), 4),
        "official_forward_s": round(t1 - t0, 2),
        "our_forward_s": round(t2 - t1, 2),
    })
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", action="append", default=[], metavar="NAME=PATH",
                    help=f"official checkout of a family ({', '.join(FAMILIES)}); repeat for several")
    ap.add_argument("--only", default=None, help="comma-separated architecture names to run (default: all)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    repos = {}
    for item in args.repo:
        name, sep, path = item.partition("=")
        if not sep or name not in FAMILIES:
            ap.error(f"--repo {item!r}: expected NAME=PATH with NAME one of {', '.join(FAMILIES)}")
        repos[name] = Path(path)
    if not repos:  # `make bench` runs every script without arguments: say what is needed, do not fail
        print(json.dumps({"skipped": "no --repo NAME=PATH given: the official checkouts are not part of this "
                                     "repository (see the docstring)", "families": list(FAMILIES)}))
        return 0
    only = set(args.only.split(",")) if args.only else None
    neuron, functional = _spikingjelly()
    _force_torch_backend(neuron)
    torch.set_grad_enabled(False)
    import spikingjelly
    out = {"spikingjelly": getattr(spikingjelly, "__version__", "0.0.0.0.14"), "torch": torch.__version__,
           "families": {}}
    try:
        import timm
        out["timm"] = timm.__version__
    except ImportError:
        pass
    bad = False
    for name, repo in repos.items():
        rows = []
        for arch, make, shape in FAMILIES[name](repo):
            if only and arch not in only:
                continue
            torch.set_grad_enabled(True)  # BN calibration runs in train mode under no_grad itself
            row = compare(arch, make, shape, functional, args.batch, args.seed)
            rows.append(row)
            bad |= not (row.get("logits_equal") and row["state_dict_shapes_equal"]
                        and row["official_parameters"] == row["our_parameters"])
            sys.stderr.write(f"{arch}: {json.dumps(row)}\n")
        out["families"][name] = {"repo": str(repo), "variants": rows}
    print(json.dumps(out, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
