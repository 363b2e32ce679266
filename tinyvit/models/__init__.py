"""TinyViT model family from contraction factors (paper Sec. 3.2), built on timm's TinyVit."""
from .contraction import (
    PAPER_PARAMS_M,
    PAPER_THROUGHPUT_V100,
    PRESETS,
    ContractionFactors,
    analytic_params,
    count_params,
    preset,
    stage_resolutions,
    throughput,
)

tinyvit_5m = PRESETS["tinyvit_5m"]
tinyvit_11m = PRESETS["tinyvit_11m"]
tinyvit_21m = PRESETS["tinyvit_21m"]

__all__ = ["ContractionFactors", "PRESETS", "PAPER_PARAMS_M", "PAPER_THROUGHPUT_V100",
           "count_params", "analytic_params", "preset", "stage_resolutions", "throughput",
           "tinyvit_5m", "tinyvit_11m", "tinyvit_21m"]
