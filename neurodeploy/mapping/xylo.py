"""Chip fit of a Xylo integer network (:mod:`neurodeploy.lower.xylo`) with the rules of rockpool's mapper /
design-rule check (DRC): the whole network on one core, limits from the profile."""
from __future__ import annotations

from ..lower.xylo import XyloArtifact
from .records import Core, FitResult, Violation


def fit(artifact: XyloArtifact, profile):
    """Fit verdict with the rules of rockpool's mapper / DRC for the chip (limits from the profile)."""
    lim = {k: profile.core_limit(k) for k in ("input_channels", "hidden_neurons", "output_neurons")}
    used = {"input_channels": artifact.n_in, "hidden_neurons": artifact.n_hidden, "output_neurons": artifact.n_out}
    hidden = artifact.hidden_layers()
    out_layer = artifact.layers[-1]
    who = {"input_channels": hidden[0]["name"], "hidden_neurons": hidden[-1]["name"],
           "output_neurons": out_layer["name"]}
    res = FitResult(profile.name, profile.title, True, [], [])
    res.limits = dict(lim)
    for k, n in used.items():
        if lim[k] is not None and n > lim[k]:
            res.violations.append(Violation("limit", who[k], f"{k.replace('_', ' ')}: {n} > {lim[k]} "
                                            "(the whole network runs on one core)"))
    need = int(profile.core_limit("min_hidden_populations", 1) or 1)
    if len(hidden) < need:
        res.violations.append(Violation("layers", hidden[0]["name"],
                                        f"{profile.title} needs separate input- and output-expansion populations "
                                        f"({need} hidden populations at least, here {len(hidden)})"))
    res.fits = not res.violations
    res.n_cores = 1
    res.n_chips = 1 if res.fits else 0
    if res.fits and profile.systems:
        res.system, res.system_chips = profile.systems[0]
    res.cores = [Core(0, 0, [], used)]
    res.totals = used
    res.bottleneck = max(({"resource": r, "peak_core_pct": 100.0 * used[r] / lim[r], "mean_pct": 100.0 * used[r] / lim[r]}
                          for r in lim if lim[r]), key=lambda b: b["peak_core_pct"])
    res.per_layer = [{"layer": L["name"], "cores": 1, "neurons": L["size"]} for L in artifact.layers]
    res.latency_steps = len(hidden)
    res.notes = ["verdict: the rules of rockpool 3.1's mapper/DRC for this chip (tests/test_xylo_target.py "
                 "compares them); samna's configuration validation is not available (no Python 3.11 samna)"]
    return res
