"""Uni-STG data synthesis (paper section 3.2.1): captioned video ranges -> spatio-temporal grounding records.

Stages (each ``process(sample) -> Sample | Drop``):

- :mod:`~spacevllm.data.unistg.analyzer`: groundable objects of the caption, subject first (LLM or rules);
- :mod:`~spacevllm.data.unistg.annotator`: open-set detector boxes (Grounding-DINO / OWLv2 through transformers;
  or :mod:`~spacevllm.data.unistg.oracle`'s noisy ground truth on the synthetic world);
- :mod:`~spacevllm.data.unistg.refiner`: tighten the time range to the detected frames, drop < 2 s or > 120 s;
- :mod:`~spacevllm.data.unistg.filter`: drop complex frames, keep the top box, drop size jumps.

:mod:`~spacevllm.data.unistg.pipeline` composes them; :mod:`~spacevllm.data.unistg.report` counts removals.
"""

from spacevllm.data.unistg.filter import BoxFilter
from spacevllm.data.unistg.pipeline import Pipeline, refine_and_filter
from spacevllm.data.unistg.refiner import Refiner
from spacevllm.data.unistg.report import Report
from spacevllm.data.unistg.sample import Detection, Drop, Sample, Stage, read_samples, sample_from_json, to_record

__all__ = [
    "BoxFilter",
    "Detection",
    "Drop",
    "Pipeline",
    "Refiner",
    "Report",
    "Sample",
    "Stage",
    "read_samples",
    "refine_and_filter",
    "sample_from_json",
    "to_record",
]
