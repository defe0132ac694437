"""Metrics on the official test split, per client and head: shared accuracy (the whole split),
private accuracy (reweighted by the client's private class distribution) and per-class accuracy;
and the same two accuracies on the validation split (`val_shared_acc`, `val_private_acc`), which
every selection reads (the shared readout's head, a front's setting) so that the test split that
reports an effect never chooses it.
`ensemble` is, per test sample, the prediction of the client's own most confident head. With them,
per client, the bytes it has sent, its mean training loss and, per head that distils, its teacher
precision since the last evaluation."""

from __future__ import annotations

import torch

VAL = "val_"  # the validation split's metrics: val_shared_acc, val_private_acc


@torch.no_grad()
def predict(model, x_uint8: torch.Tensor, normalise, batch: int = 100) -> torch.Tensor:
    """Logits T x K x C (float32) of every head on the test images. Batches are small so that their
    activations stay in the CPU's cache (docs/performance.md); the batch size does not change the
    logits of the default CNN."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(x_uint8), batch):
        x = normalise(x_uint8[start:start + batch])
        out.append(model(x)[1].float())  # in fp32 under either precision (learning/precision.py)
    model.train(was_training)
    return torch.cat(out)


def head_predictions(logits_TxKxC: torch.Tensor) -> dict[str, torch.Tensor]:
    probs = logits_TxKxC.softmax(dim=-1)
    conf_TxK, pred_TxK = probs.max(dim=-1)
    best_T = conf_TxK.argmax(dim=1)
    preds = {str(k): pred_TxK[:, k] for k in range(pred_TxK.shape[1])}
    preds["ensemble"] = pred_TxK.gather(1, best_T[:, None])[:, 0]
    return preds


def rows(step: int, client: int, logits_TxKxC: torch.Tensor, y_T: torch.Tensor, private_dist_C: torch.Tensor,
         classes: int, prefix: str = "") -> list[list]:
    """Tidy rows [step, client, head, metric, value]: shared and private accuracy per head, and on the
    test split (no prefix) the per-class accuracies too."""
    out = []
    counts_C = torch.bincount(y_T, minlength=classes).clamp_min(1).float()
    for head, pred in head_predictions(logits_TxKxC).items():
        correct = (pred == y_T).float()
        class_acc_C = torch.zeros(classes, device=y_T.device).index_add_(0, y_T, correct) / counts_C
        out.append([step, client, head, f"{prefix}shared_acc", float(correct.mean())])
        out.append([step, client, head, f"{prefix}private_acc", float((private_dist_C * class_acc_C).sum())])
        if not prefix:
            out.extend([step, client, head, f"class_acc_{c}", float(a)] for c, a in enumerate(class_acc_C.tolist()))
    return out


def evaluate(trainer) -> list[list]:
    """Tidy rows of every client at the trainer's step: accuracies per head, bytes sent, train loss."""
    fed, method, run = trainer.fed, trainer.method, trainer.run
    losses_now = trainer.mean_loss()
    precision_now = trainer.teacher_precision()
    logits_of: dict[int, tuple] = {}  # per model: one model may answer for several clients
    out = []
    for i in range(fed.clients):
        m = method.model_of(i)
        if m not in logits_of:
            logits_of[m] = (predict(trainer.models[m], fed.test_x, fed.data.normalise),
                            predict(trainer.models[m], fed.val_x, fed.data.normalise))
        test, val = logits_of[m]
        out += rows(trainer.step, i, test, fed.test_y, fed.private_dist_NxC[i], fed.classes)
        out += rows(trainer.step, i, val, fed.val_y, fed.private_dist_NxC[i], fed.classes, prefix=VAL)
        sent = method.bytes_sent(run, trainer.step, trainer.models[m], fed.out_degree[i], fed.classes)
        out.append([trainer.step, i, "-", "bytes_sent", float(sent)])
        out.append([trainer.step, i, "-", "train_loss", losses_now[m]])
        # how often the targets came from a sender owning the sample's class (head k: from senders' head k-1)
        out.extend([trainer.step, i, str(k), "teacher_precision", p] for k, p in sorted(precision_now[m].items()))
    return out
