"""Training data: Uni-STG records -> model inputs, task mixtures."""
