#!/usr/bin/env python
"""Where the time goes: torch.profiler op tables (top ops by self CPU time) of ours and the authors' model.

    python benchmarks/model_profile.py --authors /path/to/MDR-GCN --config gym --mode train
    python benchmarks/model_profile.py --config ntu --mode eval --top 15 --markdown

Same models, inputs, threads and steps as `model_speed.py`; each side is profiled over `--steps` steps
after `--warmup`, the sides alternating (A B A B …, one profiler session per step) so both see the same
machine load. Prints, per side,
the ops with the largest self CPU time as JSON lines (or a markdown table with `--markdown`), with their
share of the side's total self CPU time.
"""
import argparse
import json
import os
import sys

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model_speed import authors_model_class, build, inputs, make_step   # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--authors', default=os.environ.get('MDR_AUTHORS_DIR'))
    ap.add_argument('--sides', default='ours')
    ap.add_argument('--config', default='gym', choices=['gym', 'ntu'])
    ap.add_argument('--mode', default='train', choices=['eval', 'train'])
    ap.add_argument('--precision', default='fp32', choices=['fp32', 'bf16'])
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--frames', type=int, default=64)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=4)
    ap.add_argument('--top', type=int, default=12)
    ap.add_argument('--markdown', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    Model, why = authors_model_class(a.authors)
    sides = (['authors'] if Model else []) + a.sides.split(',')
    if not Model: print(json.dumps(dict(note=f"authors' model not profiled: {why}")))
    x, y = inputs(a.config, a.batch, a.frames)
    steps = {s: make_step(build(s, a.config, a.authors), a.mode, a.precision, x, y) for s in sides}
    for _ in range(a.warmup):
        for s in sides: steps[s]()
    totals = {s: {} for s in sides}                  # side -> op -> [calls, self CPU µs]
    for _ in range(a.steps):
        for s in sides:
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                steps[s]()
            for e in prof.key_averages():
                t = totals[s].setdefault(e.key, [0, 0.])
                t[0] += e.count; t[1] += e.self_cpu_time_total
    for s in sides:
        ev = sorted(((op, n, t) for op, (n, t) in totals[s].items() if t > 0), key=lambda e: -e[2])
        total = sum(t for _, _, t in ev)
        if a.markdown:
            print(f"\n{s}, {a.config} {a.mode} {a.precision}: {total / 1e3 / a.steps:.0f} ms self CPU per step\n")
            print('| op | calls/step | self CPU ms/step | share |')
            print('|---|---:|---:|---:|')
        for op, n, t in ev[:a.top]:
            row = dict(side=s, config=a.config, mode=a.mode, precision=a.precision, op=op,
                       calls_per_step=round(n / a.steps, 1), self_cpu_ms_per_step=round(t / 1e3 / a.steps, 1),
                       share=round(t / total, 3))
            if a.markdown:
                print(f"| `{row['op']}` | {row['calls_per_step']:g} | {row['self_cpu_ms_per_step']} | {row['share']:.0%} |")
            else:
                print(json.dumps(row), flush=True)


if __name__ == '__main__':
    main()
