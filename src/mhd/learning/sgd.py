"""SGD with momentum (Nesterov or heavy-ball) and weight decay on the CPU: the update of
torch.optim.SGD to the bit (its per-tensor path, the one it takes for CPU tensors), without
torch.optim. torch.optim's `add_param_group` and `step` import torch._dynamo on their first call,
and with it sympy, a cost every training job would pay at start-up (docs/performance.md). State dicts have
torch.optim.SGD's layout, so checkpoints of either load in the other (tests/test_sgd.py).

On other devices `make` gives torch.optim.SGD, which there steps all tensors with one multi-tensor
kernel per operation."""

from __future__ import annotations

import torch

# flags of torch.optim.SGD this class has no path for: a state dict that sets one is refused
_UNSUPPORTED = ("foreach", "fused", "differentiable")


def make(params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
    """SGD for these parameters: this class on the CPU, torch.optim.SGD on other devices. The trainer and
    every variant of `mhd bench` build theirs here, so that they step alike."""
    params = list(params)
    cls = SGD if params and params[0].device.type == "cpu" else torch.optim.SGD
    return cls(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


def _like(value, param: torch.Tensor):
    """A saved state tensor on the parameter's device (and in its dtype, for a floating parameter), as
    torch.optim casts it."""
    if not torch.is_tensor(value):
        return value
    if param.is_floating_point():
        return value.to(dtype=param.dtype, device=param.device)
    return value.to(device=param.device)


class SGD:
    """One parameter group; `param_groups[0]["lr"]` may be set before each step, as the trainer does."""

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("optimizer got a parameter more than once")
        if nesterov and momentum <= 0:
            raise ValueError(f"Nesterov momentum needs momentum > 0, got momentum={momentum}")
        self.param_groups = [{"params": params, "lr": lr, "momentum": momentum, "dampening": 0,
                              "weight_decay": weight_decay, "nesterov": nesterov, "maximize": False,
                              "foreach": None, "differentiable": False, "fused": None}]
        self.state: dict[torch.Tensor, dict] = {}

    def zero_grad(self) -> None:
        """Gradients to None, as torch.optim's default does."""
        for p in self.param_groups[0]["params"]:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        lr, momentum, decay, nesterov = group["lr"], group["momentum"], group["weight_decay"], group["nesterov"]
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = -p.grad if group["maximize"] else p.grad
            if decay != 0:
                grad = grad.add(p, alpha=decay)
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.detach().clone()
                else:
                    buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
                grad = grad.add(buf, alpha=momentum) if nesterov else buf
            p.add_(grad, alpha=-lr)

    def state_dict(self) -> dict:
        """torch.optim.SGD's: the group's keys in order, parameters named by their index, state in the
        order it was created."""
        params = self.param_groups[0]["params"]
        index = {id(p): i for i, p in enumerate(params)}
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"} | {"params": list(range(len(params)))}
        return {"state": {index[id(p)]: dict(s) for p, s in self.state.items()}, "param_groups": [group]}

    def load_state_dict(self, saved: dict) -> None:
        """A state dict of this class or of torch.optim.SGD over the same parameters."""
        params = self.param_groups[0]["params"]
        groups = saved["param_groups"]
        if len(groups) != 1 or len(groups[0]["params"]) != len(params):
            raise ValueError(f"the saved optimiser state has {[len(g['params']) for g in groups]} parameters per "
                             f"group; this optimiser has one group of {len(params)}")
        flags = [k for k in _UNSUPPORTED if groups[0].get(k)]
        if flags:
            raise ValueError(f"the saved optimiser state sets {', '.join(flags)}, which this SGD has no path for")
        by_index = dict(zip(groups[0]["params"], params))
        state = {by_index[i]: {k: _like(v, by_index[i]) for k, v in s.items()} for i, s in saved["state"].items()}
        self.state = state  # only once all of it loaded
        self.param_groups[0].update({k: v for k, v in groups[0].items() if k != "params"})
