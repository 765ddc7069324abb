"""Readers of the public benchmarks into Uni-STG records (:mod:`spacevllm.records`)."""
