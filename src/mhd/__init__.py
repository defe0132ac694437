"""mhd: decentralized learning with Multi-Headed Distillation (Zhmoginov et al., CVPR 2023)."""

__version__ = "0.1.0"
