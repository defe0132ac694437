"""What a run trains on: the clients' private and public data on the device, the communication
graph as sender masks, and the evaluation set. Built once from the artefacts of the data stage,
cross-checked against the run; the trainer and the benchmarks read it, nothing here trains."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import datasets, files, graphs, splits
from ..errors import ConfigError, DataError
from . import gpu_slots
from .batches import TensorData


def pick_device(name: str) -> torch.device:
    """The device a run computes on. CUDA: a GPU of the job's own, held for the process's life
    (gpu_slots), so that jobs side by side never share one and never outnumber the GPUs."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is available; use device: auto or cpu")
    if name == "cuda":
        return gpu_slots.claim_cuda()
    return torch.device(name)


@dataclass
class Federation:
    clients: int
    classes: int
    device: torch.device
    data: TensorData                  # training split on the device: private sets and the public set
    test_x: torch.Tensor              # T x C x H x W uint8: the evaluation subset of the test split
    test_y: torch.Tensor              # T
    val_x: torch.Tensor               # V x C x H x W uint8: the validation split (labelled, from the training
    val_y: torch.Tensor               # split, never trained on): what every selection reads (splits.make)
    private_dist_NxC: torch.Tensor    # each client's private class distribution (private accuracy)
    senders_main_NxJ: torch.Tensor    # [i, j]: j sends to i (main-head distillation)
    senders_aux_NxJ: torch.Tensor     # the same, plus i itself when include_self (auxiliary heads)
    out_degree: list[int]             # receivers per client (bytes sent)
    primary_NxC: torch.Tensor         # [i, c]: c is one of client i's primary classes (splits.primary_classes)
    meta: dict                        # the records of the prepared dataset, the split and the graph
    inputs: dict                      # sha256 of what is trained on: prepared data, split, graph edges

    @classmethod
    def load(cls, run: dict, prepared: str | Path, split_dir: str | Path, graph_dir: str | Path,
             device: str = "auto") -> "Federation":
        dev = pick_device(device if device != "auto" else run.get("device", "auto"))
        tensors, data_meta = datasets.load(prepared)
        split, split_meta = splits.read(split_dir)
        edges, graph_meta = graphs.read(graph_dir)
        n, classes = run["clients"], data_meta["classes"]
        splits.check(split, len(tensors["train_y"]), split_dir)
        if split.distribution.shape[0] != n or graph_meta["params"]["clients"] != n:
            raise DataError(f"run has clients = {n}, but split {split_dir} has {split.distribution.shape[0]} "
                            f"and graph {graph_dir} has {graph_meta['params']['clients']}")
        data = TensorData(tensors["train_x"], tensors["train_y"], split.private, split.public, dev, run["augment"])
        test_idx = torch.arange(len(tensors["test_y"]))
        if run["eval_samples"]:  # the first eval_samples / C test images of every class
            per_class = max(1, run["eval_samples"] // classes)
            test_idx = torch.cat([torch.nonzero(tensors["test_y"] == c)[:per_class, 0]
                                  for c in range(classes)]).sort().values
        labels = tensors["train_y"].numpy()
        counts = np.stack([np.bincount(labels[p], minlength=classes) for p in split.private])
        senders = torch.from_numpy(graphs.senders_matrix(edges, n))
        senders_aux = senders | torch.eye(n, dtype=torch.bool) if run["include_self"] else senders
        return cls(
            clients=n, classes=classes, device=dev, data=data,
            test_x=tensors["test_x"][test_idx].to(dev), test_y=tensors["test_y"][test_idx].to(dev),
            val_x=tensors["train_x"][torch.as_tensor(split.validation)].to(dev),
            val_y=tensors["train_y"][torch.as_tensor(split.validation)].to(dev),
            private_dist_NxC=torch.as_tensor(counts / counts.sum(1, keepdims=True), dtype=torch.float32, device=dev),
            senders_main_NxJ=senders.to(dev), senders_aux_NxJ=senders_aux.to(dev),
            out_degree=[sum(1 for s, _ in edges if s == i) for i in range(n)],
            primary_NxC=torch.as_tensor(splits.primary_classes(split.distribution), device=dev),
            meta={"data": data_meta, "split": split_meta, "graph": graph_meta},
            inputs={"prepared": data_meta["sha256"], "split": split_meta["sha256"]["indices.csv"],
                    "graph": files.sha256_bytes(json.dumps(edges).encode())})

    @property
    def image_shape(self) -> tuple[int, int]:
        """(channels, side) of the training images."""
        return self.data.x.shape[1], self.data.x.shape[-1]
