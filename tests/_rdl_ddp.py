"""RDL on one batch split over processes, the way the Trainer runs it (tests/test_ddp.py).

Run under `torchrun --nproc_per_node 2 tests/_rdl_ddp.py OUT`: every process scores its slice of the same
batch through a DDP-wrapped linear model and `build_criterion('rdl')`, averages the centres' gradients as the
Trainer does, and rank 0 writes the loss and all gradients to OUT/ddp.pt. `step(...)` without torch.distributed
is the one-process reference on the whole batch.
"""
import sys
from pathlib import Path
import torch, torch.nn as nn, torch.distributed as dist
from mdr_gcn_nb.losses import build_criterion

N_CLASSES, D_IN, D = 4, 6, 5
# (name, criterion options, with cross-entropy, slice sizes per process)
CASES = [("paper", dict(), True, (4, 4)),
         ("paper_function", dict(impl="function"), True, (4, 4)),
         ("official", dict(variant="official"), True, (4, 4)),
         ("paper_uneven", dict(), False, (3, 5)),
         ("official_uneven", dict(variant="official"), False, (3, 5)),
         ("paper_per_process", dict(global_batch=False), True, (4, 4))]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.fc = nn.Linear(D_IN, D), nn.Linear(D, N_CLASSES)
    def forward(self, x):
        f = torch.tanh(self.body(x))
        return f, self.fc(f)


def step(options: dict, with_ce: bool, sizes: tuple, seed: int = 0) -> dict:
    "One forward/backward; under torch.distributed on this process's slice (sizes[rank] rows), else on the whole batch."
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(sum(sizes), D_IN, generator=g, dtype=torch.float64), torch.randint(0, N_CLASSES, (sum(sizes),), generator=g)
    torch.manual_seed(seed)
    net, crit = Net().double(), build_criterion("rdl", N_CLASSES, D, **options).double()
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world > 1:
        r = dist.get_rank()
        x, y = x[sum(sizes[:r]):sum(sizes[:r + 1])], y[sum(sizes[:r]):sum(sizes[:r + 1])]
    if with_ce:                                                     # L_S + L_R (Eq 13), as the Trainer calls it
        model = nn.parallel.DistributedDataParallel(net) if world > 1 else net   # kept alive through backward
        feats, logits = model(x)
        loss, _, terms = crit(feats, logits, y)
    else:                                                           # L_R alone (slices of any size): no classifier
        body = nn.parallel.DistributedDataParallel(net.body) if world > 1 else net.body
        loss = crit.embedding(torch.tanh(body(x)), y); terms = {"rdl": loss.detach()}
    loss.backward()
    if world > 1:                                                   # as the Trainer: average the centres' gradients
        for p in crit.parameters(): dist.all_reduce(p.grad); p.grad /= world
        loss = loss.detach().clone(); dist.all_reduce(loss); loss /= world   # the loss averaged over processes
    grads = {f"grad.{k}": p.grad for k, p in net.named_parameters() if p.grad is not None}
    return {"loss": loss.detach(), "rdl": terms["rdl"], **grads,
            "grad.centres": crit.embedding.centres.grad}


if __name__ == "__main__":
    dist.init_process_group("gloo")
    out = {name: step(opt, ce, sizes) for name, opt, ce, sizes in CASES}
    if dist.get_rank() == 0: torch.save(out, Path(sys.argv[1]) / "ddp.pt")
    dist.barrier(); dist.destroy_process_group()
