"""`tinyvit contract`: progressive model contraction (paper Sec. 3.2) as a job.

``search.py``: the constrained local search over contraction factors (moves, measurement,
the resumable JSON-lines log, the plot); ``proxy.py``: the proxy scorers, short runs of the
one training loop (``tinyvit.jobs.train``). The model family itself (factors -> timm TinyVit,
parameter counts, throughput) is architecture and lives in ``tinyvit.models``.
"""
from .proxy import DistillProxy, LabelsProxy, ScorerFn, make_teacher_store, proxy_datasets
from .search import (LOG_FORMAT, MOVES, Measurer, SearchLog, apply_move, contract_search,
                     contraction_moves, plot_log)

__all__ = ["contract_search", "Measurer", "SearchLog", "MOVES", "LOG_FORMAT", "apply_move",
           "contraction_moves", "plot_log", "DistillProxy", "LabelsProxy", "make_teacher_store",
           "proxy_datasets", "ScorerFn"]
