"""Value domains, spike purity, activity recording and readout folding over NIR graphs (docs/purity.md).

* :func:`analyze`: value domain of every node (binary, ternary, proven integer range, real);
* :func:`check_purity`: class of every synaptic node (AC, INTxFLOAT, MAC, SHIFT, FOLDED, ROUTING) and
  the verdict with allowed exceptions;
* :func:`fold_readout` / :func:`verify_fold`: exact rewrite of a non-spiking Linear(mean(x)) head;
* :func:`record_activity`: dynamic check and firing rates on sample data;
* :func:`check_model`: all of it from a model, checkpoint or .nir file (what ``neurodeploy check`` runs).
"""
from ..data import load_samples
from .activity import record_activity
from .check import check_model
from ..front_door import load_graph
from .domains import INPUT_DOMAINS, Domain, DomainAnalysis, analyze
from .fold import fold_readout, verify_fold
from .purity import ALL_CLASSES, PURE_CLASSES, PurityReport, SynapticOp, check_purity, classify

__all__ = ["INPUT_DOMAINS", "Domain", "DomainAnalysis", "analyze", "ALL_CLASSES", "PURE_CLASSES", "PurityReport",
           "SynapticOp", "check_purity", "classify", "fold_readout", "verify_fold", "record_activity",
           "load_samples", "check_model", "load_graph"]
