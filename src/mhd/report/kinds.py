"""The figure kinds an experiment may name: those drawn from trained runs and those drawn from the
data artefacts alone. The one list: the config check and the workflow read it from here, and
figures.py draws exactly these (a test keeps them in step)."""

TRAINING_KINDS = ("learning_curves", "per_head", "sweep", "ablation", "topologies", "transitive", "heterogeneous",
                  "theory", "communication", "pareto", "teacher_precision")
DATA_KINDS = ("label_distribution", "graphs")
KINDS = (*TRAINING_KINDS, *DATA_KINDS)
