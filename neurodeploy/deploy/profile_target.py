"""The default target for a hardware profile with no registered implementation: its "artifact" is the
mapper's network description built from the annotated NIR graph (no lowering, no simulator)."""
from __future__ import annotations

from dataclasses import dataclass

from .target import Target
from ..mapping import from_graph, fit


@dataclass
class GraphMapping:
    """The artifact of a profile-only target: the network the mapper reads, and how it was made."""

    network: object            # neurodeploy.mapping.MapNetwork
    mapped_from: str


class ProfileTarget(Target):
    """Chip fit from the profile's cost model on the NIR graph; nothing is lowered or simulated."""

    backends = ()

    def lower(self, deployment, profile) -> GraphMapping:
        relay = "graded_spikes" in profile.operations
        ann = deployment.annotated          # the deployment's one annotated graph (purity included)
        net = from_graph(ann, residual="relay" if relay else "direct")
        # synaptic nodes fed by non-binary values (integer spike counts, real values) away from the encoder /
        # readout need graded messages (e.g. SEW-ResNet's ADD residual)
        purity = ann.purity
        for o in purity.ops:
            if o.op_class in ("INTxFLOAT", "MAC") and o.role not in ("encoder", "readout"):
                net.use("graded_spikes", o.node)
        return GraphMapping(net, "the NIR graph (graded residual relays)" if relay
                            else "the NIR graph (binary spikes only)")

    def map(self, artifact: GraphMapping, profile, rates=None):
        return fit(artifact.network, profile, rates=rates)

    def describe(self, artifact: GraphMapping) -> dict:
        return {"mapped_from": artifact.mapped_from}
