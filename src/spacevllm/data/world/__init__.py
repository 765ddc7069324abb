"""The synthetic spatio-temporal world: coloured shapes that act in time windows, rendered to MP4 videos with
exact ground truth, and Uni-STG records for STVG, VTG, REC and QA (``spacevllm synth-world``).

- :mod:`~spacevllm.data.world.scene`: objects, actions, timelines and scene sampling (no pixels).
- :mod:`~spacevllm.data.world.render`: numpy rasterizer (hard-edged masks, exact pixel-edge xyxy boxes).
- :mod:`~spacevllm.data.world.captions`: captions, questions, REC expressions.
- :mod:`~spacevllm.data.world.generate`: :func:`generate_world` writes a split; :func:`world_stats` measures baselines.
"""

from spacevllm.data.world.generate import WORLD_TASKS, generate_world, world_mismatch, world_stats

__all__ = ["WORLD_TASKS", "generate_world", "world_mismatch", "world_stats"]
