"""Deployment: one annotated model, one artifact per target (registry), built once per command.

    dep = Deployment.build("model.pt", targets=["loihi2", "speck"], data="x.npz")
    dep.run()                       # lower -> fidelity on the samples -> chip fit
    dep.write("out/")               # out/<target>/ artifacts

A new chip: subclass :class:`Target`, ``register_target("mychip", MyTarget)``, add a profile TOML
(docs/design.md, "Adding a target").
"""
from .deployment import Deployment, TargetDeployment
from .registry import get_target, register_target, registered_targets, unregister_target
from .target import ALLOWED_EXCEPTIONS, Target

__all__ = ["ALLOWED_EXCEPTIONS", "Deployment", "TargetDeployment", "Target", "get_target", "register_target",
           "registered_targets", "unregister_target"]
