"""How a core is charged, per cost model (the profile's ``cost_model``): each model turns a box of a population
into its per-core resources (neurons, input axons, synapse memory ...), with the limits it is held to."""
from __future__ import annotations

import math

import numpy as np

from .boxes import Box, box_size, dst_channels, group_load
from .network import MapNetwork, MapPopulation, MapSynapses


class CostModel:
    resources: tuple = ()
    tiling = "flat"

    def __init__(self, profile):
        self.profile = profile
        self.limits = {r: profile.core_limit(r) for r in self.resources if profile.core_limit(r) is not None}

    def usage(self, net: MapNetwork, pop: MapPopulation, box: Box) -> dict:
        raise NotImplementedError


class Loihi2Cost(CostModel):
    """The Loihi 2 compiler's per-core accounting, fitted on its tables (hardware_profiles/loihi2.toml
    [synapse_accounting]; tests/data/loihi2_compiler_tables.json)."""
    resources = ("neurons", "neuron_groups", "input_axons", "synapse_memory")

    def __init__(self, profile):
        super().__init__(profile)
        acc = lambda k, d: float(profile.value("synapse_accounting", k, d))
        self.s_dense = acc("dense_synapses_per_unit", 4)
        self.header = acc("axon_header_units", 0)
        self.s_graded = acc("graded_synapses_per_unit", self.s_dense)
        self.conv_list = acc("conv_list_units", 0)
        self.conv_wpu = acc("conv_weights_per_unit", acc("conv_synapses_per_unit", 4))
        self.conv_axons = profile.value("synapse_accounting", "conv_input_axons", None)
        self.tiling = profile.tiling
        # neuron slots per neuron of each graded kind (a core holds core.neurons LIF neurons, fewer of these)
        full = float(profile.core_limit("neurons", 4095))
        self.slots = {"product": max(1, round(full / float(profile.core_limit("product_neurons", full)))),
                      "accumulator": max(1, round(full / float(profile.core_limit("graded_vec_neurons", full))))}

    def conv_units(self, syn: MapSynapses, c_in: int, box: Box) -> int:
        """SynMem of a conv group's kernel slice on a core with output channels box[0]:box[1]: one list per
        (input channel of a group, kernel tap), each conv_list_units + its weights / conv_weights_per_unit."""
        c_box = box[1] - box[0]
        taps = syn.kernel[0] * syn.kernel[1]
        cin_g = c_in // max(1, syn.groups)
        if syn.groups > 1:
            cpg_out = max(1, dst_channels(syn) // syn.groups)
            n_groups = (box[1] - 1) // cpg_out - box[0] // cpg_out + 1
            per_list = min(c_box, cpg_out)
        else:
            n_groups, per_list = 1, c_box
        lists = n_groups * cin_g * taps
        return math.ceil(lists * (self.conv_list + per_list / self.conv_wpu))

    def usage(self, net, pop, box):
        n = box_size(box)
        axons = units = syn_total = 0
        for syn in net.incoming(pop.name):
            if syn.kind == "conv":
                src = net.pop(syn.src)
                a, s, _ = group_load(net, syn, pop, box)
                if self.conv_axons is not None:
                    a = min(a, int(self.conv_axons))   # population axons (the compiler's AxonIn 1-2)
                axons += a
                syn_total += s
                units += self.conv_units(syn, src.shape[0], box) + int(math.ceil(a * self.header))
                continue
            a, s, per_axon = group_load(net, syn, pop, box)
            axons += a
            syn_total += s
            if syn.kind == "dense":
                if per_axon is not None:
                    units += int(np.ceil(per_axon / self.s_dense).sum())
                else:
                    units += a * math.ceil(n / self.s_dense)
            else:
                per_unit = self.s_graded if syn.graded else self.s_dense
                units += a * math.ceil((s / max(1, a)) / per_unit)
            units += int(math.ceil(a * self.header))
        slots = math.ceil(n * self.slots.get(pop.kind, 1) - 1e-9)
        return {"neurons": slots, "neuron_groups": 1, "input_axons": axons, "synapse_memory": units, "synapses": syn_total}


class Loihi1Cost(CostModel):
    resources = ("neurons", "input_axons", "synapse_memory")
    tiling = "flat"

    def __init__(self, profile):
        super().__init__(profile)
        acc = lambda k, d: int(profile.value("synapse_accounting", k, d))
        self.wbits, self.group, self.header, self.word = acc("weight_bits", 9), acc("group_size", 64), acc("header_bits", 10), acc("word_bits", 64)

    def _bits(self, per_axon_targets: float, n_axons: int, n: int) -> int:
        idx = 0 if n <= 1 else max(6, min(12, math.ceil(math.log2(n))))
        t = int(math.ceil(per_axon_targets))
        if t <= 0:
            return 0
        full, rest = divmod(t, self.group)
        per_group = lambda m: math.ceil((m * (self.wbits + idx) + self.header) / self.word) * self.word
        bits = full * per_group(self.group) + (per_group(rest) if rest else 0)
        return bits * n_axons

    def usage(self, net, pop, box):
        n = box_size(box)
        axons = bits = syn_total = 0
        for syn in net.incoming(pop.name):
            a, s, per_axon = group_load(net, syn, pop, box)
            axons += a
            syn_total += s
            if per_axon is not None:
                bits += sum(self._bits(t, 1, n) for t in per_axon)
            else:
                bits += self._bits(s / max(1, a), a, n)
        return {"neurons": n, "input_axons": axons, "synapse_memory": bits, "synapses": syn_total}


class SpiNNaker2Cost(CostModel):
    resources = ("neurons", "synapse_memory")

    def usage(self, net, pop, box):
        b = float(self.profile.value("synapse_accounting", "bytes_per_synapse", 4))
        syn_total = sum(group_load(net, s, pop, box)[1] for s in net.incoming(pop.name))
        return {"neurons": box_size(box), "synapse_memory": int(syn_total * b), "synapses": syn_total}


class CrossbarCost(CostModel):
    resources = ("neurons", "input_axons")

    def usage(self, net, pop, box):
        axons = syn_total = 0
        for s in net.incoming(pop.name):
            a, k, _ = group_load(net, s, pop, box)
            axons += a
            syn_total += k
        return {"neurons": box_size(box), "input_axons": axons, "synapses": syn_total}


TILED_MODELS = {"loihi2": Loihi2Cost, "loihi1": Loihi1Cost, "spinnaker2": SpiNNaker2Cost, "crossbar": CrossbarCost}
