"""SpaceVLLM: a video LLM that grounds a caption in time and space.

Layout (paper section -> module):
  box_ops / time_ops          pure box and time math (one box convention inside: normalized cxcywh)
  records                     the Uni-STG record (DESIGN section 3), shared by every reader and consumer
  video                       PyAV decoding, uniform frame sampling, the LLaVA-Video time instruction
  datasets/                   readers of HC-STVG, VidSTG+VidOR, Charades-STA, RefCOCO family, REC jsonl
  metrics/                    official-protocol STVG / VTG / REC metrics
  modeling/                   config / processor / model (3.1.2-3.1.5), space decoder, conversion
  losses                      eq. 5-6
  data/unistg/                Uni-STG synthesis: analyzer, annotator, refiner, filter (3.2.1)
  world/                      synthetic spatio-temporal world for CPU training
  engine/                     training and batch evaluation on accelerate (open_clip-style separation)
"""

__version__ = "0.1.0"

__all__ = ["load", "Model", "Grounding"]


def __getattr__(name: str):
    """``spacevllm.load`` / ``Model`` / ``Grounding`` from :mod:`spacevllm.api`, imported on first use so that
    ``import spacevllm`` imports neither torch nor numpy."""
    if name in __all__:
        from spacevllm import api

        return getattr(api, name)
    raise AttributeError(f"module 'spacevllm' has no attribute {name!r}")
