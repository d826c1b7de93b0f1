#!/usr/bin/env python
"""Loss speed: RobustDecoupleLoss with autograd (impl='autograd') vs the fused autograd.Function with
hand-derived gradients (impl='function'), and the other criteria of build_criterion, on CPU.

Prints one JSON line per (implementation or criterion, N, M) with the median and minimum wall time in
microseconds of a forward pass and of forward + backward (features and centres/weights), over --reps
repetitions after warm-up. The two RDL implementations are timed interleaved, so a busy machine slows
both alike; the minimum is the least noisy number on a shared machine.
With --table it also prints the markdown table of benchmarks/README.md (## Loss speed).

    python benchmarks/loss_speed.py --threads 1 --table
"""
import argparse
import json
import platform
import time

import torch

from mdr_gcn_nb.losses import RobustDecoupleLoss, build_criterion

SIZES = [(8, 10), (48, 10), (64, 60), (64, 99), (256, 99)]  # (N, M): FSD-10 final / ablation, NTU60, FineGym99, a big batch
D = 256


def interleaved(fns, reps):
    """Time the callables in turn, `reps` rounds, so that all see the same machine load.
    Returns per callable (median µs, minimum µs)."""
    ts = [[] for _ in fns]
    for _ in range(reps):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter(); fn(); ts[k].append(time.perf_counter() - t0)
    out = []
    for t in ts:
        t.sort(); out.append((t[len(t) // 2] * 1e6, t[0] * 1e6))
    return out


def rdl_callables(impl, N, M):
    torch.manual_seed(0)
    m = RobustDecoupleLoss(M, D, impl=impl)
    x, y = torch.randn(N, D), torch.randint(0, M, (N,))

    def fwd():
        with torch.no_grad():
            m(x, y)

    def fwd_bwd():
        m.zero_grad(set_to_none=True)
        xx = x.clone().requires_grad_()
        m(xx, y).backward()

    for _ in range(10):
        fwd(); fwd_bwd()
    return fwd, fwd_bwd


def check_same(N, M):
    """Both implementations give the same loss and gradients here, or timing them means nothing."""
    torch.manual_seed(0)
    a, f = RobustDecoupleLoss(M, D), RobustDecoupleLoss(M, D, impl="function")
    f.load_state_dict(a.state_dict())
    x, y = torch.randn(N, D), torch.randint(0, M, (N,))
    out = []
    for m in (a, f):
        xx = x.clone().requires_grad_()
        loss = m(xx, y)
        out.append((loss, *torch.autograd.grad(loss, (xx, m.centres))))
    for u, v in zip(*out):
        torch.testing.assert_close(u, v, rtol=1e-4, atol=1e-6)


def median_us(fn, reps):
    return interleaved([fn], reps)[0][0]


def bench_criterion(name, N, M, reps):
    torch.manual_seed(0)
    crit = build_criterion(name, M, D)
    x, z, y = torch.randn(N, D), torch.randn(N, M), torch.randint(0, M, (N,))

    def fwd():
        with torch.no_grad():
            crit(x, z, y)

    def fwd_bwd():
        crit.zero_grad(set_to_none=True)
        xx, zz = x.clone().requires_grad_(), z.clone().requires_grad_()
        crit(xx, zz, y)[0].backward()

    for _ in range(10):
        fwd(); fwd_bwd()
    return median_us(fwd, reps), median_us(fwd_bwd, reps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--reps", type=int, default=200, help="timed repetitions per measurement")
    ap.add_argument("--table", action="store_true", help="also print the README markdown table")
    ap.add_argument("--criteria", action="store_true", help="also time every build_criterion loss at N=64, M=99")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    env = dict(torch=torch.__version__, threads=args.threads, cpu=platform.processor() or platform.machine())
    rows = []
    for N, M in SIZES:
        check_same(N, M)
        (af, afb), (ff, ffb) = rdl_callables("autograd", N, M), rdl_callables("function", N, M)
        res = interleaved([af, ff, afb, ffb], args.reps)  # [(median, min)] for each
        r = {"autograd": (res[0], res[2]), "function": (res[1], res[3])}
        for impl, ((f_med, f_min), (fb_med, fb_min)) in r.items():
            print(json.dumps(dict(bench="rdl", impl=impl, N=N, M=M, D=D, fwd_us=round(f_med, 1), fwd_min_us=round(f_min, 1),
                                  fwd_bwd_us=round(fb_med, 1), fwd_bwd_min_us=round(fb_min, 1), **env)))
        rows.append((N, M, r))
    crit_rows = []
    if args.criteria:
        for name in ("softmax", "rdl", "center", "sphereface", "cosface", "arcface"):
            f, fb = bench_criterion(name, 64, 99, args.reps)
            crit_rows.append((name, f, fb))
            print(json.dumps(dict(bench="criterion", name=name, N=64, M=99, D=D, fwd_us=round(f, 1), fwd_bwd_us=round(fb, 1), **env)))
    if args.table:
        print()
        print(f"RDL (paper variant), D = {D}, float32, {args.threads} thread(s), {args.reps} interleaved runs, "
              "µs as median (min):")
        print()
        print("| N | M | autograd fwd | function fwd | autograd fwd+bwd | function fwd+bwd | speed-up fwd+bwd, median (min) |")
        print("|---|---|---|---|---|---|---|")
        for N, M, r in rows:
            (af, afb), (ff, ffb) = r["autograd"], r["function"]
            print(f"| {N} | {M} | {af[0]:.0f} ({af[1]:.0f}) | {ff[0]:.0f} ({ff[1]:.0f}) | {afb[0]:.0f} ({afb[1]:.0f}) | "
                  f"{ffb[0]:.0f} ({ffb[1]:.0f}) | ×{afb[0] / ffb[0]:.2f} (×{afb[1] / ffb[1]:.2f}) |")
        if crit_rows:
            print()
            print("| criterion (N=64, M=99) | fwd µs | fwd+bwd µs |")
            print("|---|---|---|")
            for name, f, fb in crit_rows:
                print(f"| {name} | {f:.0f} | {fb:.0f} |")


if __name__ == "__main__":
    main()
