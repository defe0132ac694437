"""Stage 1 of the pipeline: the artefacts a run trains on. A dataset prepared once as tensors, the
non-iid splits drawn from it, the communication graphs, and how every file is written and traced."""
