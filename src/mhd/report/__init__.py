"""Stage 3 of the pipeline: from runs to results. One table of every run, the figures drawn from it,
and the theory of information diffusion that a figure compares against."""
