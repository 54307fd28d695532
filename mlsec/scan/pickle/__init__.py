"""Static pickle analysis: the VM (:mod:`.vm`), the rules (:mod:`.rules`) and the multi-stream
driver used by the pickle-bearing formats (:func:`analyze_pickle`)."""

from mlsec.scan.pickle.driver import LEGACY_TORCH_MAGIC, analyze_pickle, looks_like_pickle

__all__ = ["LEGACY_TORCH_MAGIC", "analyze_pickle", "looks_like_pickle"]
