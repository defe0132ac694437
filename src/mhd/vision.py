"""Import torchvision with any torch build.

The only torchvision wheel for torch 2.13 on PyPI is a CUDA build; next to the CPU torch wheel its
C++ ops fail to load and `import torchvision` stops at the missing `torchvision::nms` schema. Defining
the two schemas it registers fake kernels for is enough for models, transforms and datasets, which is
all this project uses (not `torchvision.ops` kernels or `torchvision.io`).
"""

from __future__ import annotations

import sys

_SCHEMAS = ("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_lib = None  # kept alive: the schemas live as long as this library object


def import_torchvision():
    global _lib
    try:
        import torchvision
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        import torch

        _lib = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            _lib.define(schema)
        import torchvision
    return torchvision
