"""Stage 2 of the pipeline: one run. A federation (clients, their data, the graph), the method's
hooks, the trainer's step, evaluation and checkpoints, driven by `run.train`."""
