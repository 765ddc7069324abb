"""Everything about data, from files on disk to model-ready batches. Layers, bottom first:

- :mod:`~spacevllm.data.records`: the Uni-STG record (one JSON line per sample), its schema check and JSONL I/O.
- :mod:`~spacevllm.data.readers`: public benchmark files (HC-STVG, VidSTG, Charades-STA, RefCOCO, DiDeMo,
  TACoS) -> records.
- :mod:`~spacevllm.data.world`: the synthetic spatio-temporal world (scenes, rendering, captions) -> records.
- :mod:`~spacevllm.data.unistg`: the paper's Uni-STG synthesis pipeline (analyzer, annotator, refiner, filter).
- :mod:`~spacevllm.data.mixture`: the Table 1 multi-task mixture: source datasets -> one records file.
- :mod:`~spacevllm.data.dataset` and :mod:`~spacevllm.data.collate`: records -> frames, targets and batches for
  training (the only modules here that know the model's text formats).
"""
