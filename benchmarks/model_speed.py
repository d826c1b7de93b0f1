#!/usr/bin/env python
"""Model speed and memory, measured side by side with the authors' code in one run.

    python benchmarks/model_speed.py --authors /path/to/MDR-GCN            # the README table (~10 min on 2 cores)
    python benchmarks/model_speed.py --reps 5 --configs gym --modes eval   # a first look
    python benchmarks/model_speed.py --markdown                           # also print the README's tables

Both models are built in this process: ours (`build_model('mdrgcn', ...)`, the fused default) and the
authors' `model/MDRGCN.py` imported from their checkout (`--authors`, default: env `MDR_AUTHORS_DIR`; their
module is imported as it is, nothing of it is copied). For each (config, mode) every variant (side ×
precision) runs one step in turn, `--reps` rounds (A B A B …, the starting variant rotating each round),
on the same input tensor, with the same thread count, so that drifts in the machine's load reach all of them
(heavy contention on a shared machine can still slow them unequally: prefer quiet runs). Reported
per variant: the median step time; per (config, mode, precision): ours / authors in samples/s, as the ratio
of the medians, as the median of the per-round ratios and as the ratio of the fastest steps (on a shared
machine the fastest step is the one least disturbed by other processes).

Input: batch 16, 64 frames; gym = 16×3×64×17×1 (FineGym99, 99 classes), ntu = 16×3×64×25×2 (NTU60, 60).
eval = forward under `torch.inference_mode()`; train = forward + cross-entropy + backward + SGD step
(Nesterov momentum 0.9, weight decay 1e-4). bf16 = the forward under `torch.autocast('cpu', torch.bfloat16)`
(the loss and the step in float32), for both sides.

FLOPs come from `torch.utils.flop_counter.FlopCounterMode` (one eval forward, or one training forward +
backward); GFLOP/s achieved = FLOPs / median step time, also as a fraction of the measured float32 and
bfloat16 matmul rate of this machine (a 2048² square and the model's typical 1×1-convolution shape, both
timed in the same rounds as the models).
Peak memory: each (side, config, mode, precision) in a fresh subprocess, its peak resident set
(`VmHWM`: interpreter + torch + model + activations) and the part above the resident set just before
the first step. Without the authors' checkout everything of ours still runs and the ratios say unavailable.
"""
import argparse
import datetime
import importlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

CONFIGS = {'gym': dict(num_classes=99, layout='coco17', num_persons=1, V=17, M=1,
                       authors_graph='graph.gym.Graph'),
           'ntu': dict(num_classes=60, layout='ntu25', num_persons=2, V=25, M=2,
                       authors_graph='graph.ntu_rgb_d.Graph')}
OURS = {'ours': dict(fused=True, recompute=True),          # the package default
        'ours-store': dict(fused=True, recompute=False),   # fused, R stored for backward instead of recomputed
        'ours-naive': dict(fused=False)}                   # the per-subset didactic path


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'): return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def authors_model_class(path):
    "The authors' `Model` class from their checkout at `path`, or None with a reason."
    if not path: return None, 'no checkout given (--authors or MDR_AUTHORS_DIR)'
    if not os.path.isfile(os.path.join(path, 'model', 'MDRGCN.py')):
        return None, f'{path}: no model/MDRGCN.py there'
    if path not in sys.path: sys.path.insert(0, path)
    try:
        return importlib.import_module('model.MDRGCN').Model, None
    except Exception as e:                                   # report, do not hide, why it did not import
        return None, f'{path}: importing model.MDRGCN failed: {type(e).__name__}: {e}'


def build(side, config, authors_path=None):
    c = CONFIGS[config]
    torch.manual_seed(0)
    if side == 'authors':
        Model, why = authors_model_class(authors_path)
        if Model is None: raise RuntimeError(why)
        return Model(num_class=c['num_classes'], num_point=c['V'], num_person=c['M'], graph=c['authors_graph'],
                     graph_args=dict(labeling_mode='spatial'))
    from mdr_gcn_nb.model import build_model
    return build_model('mdrgcn', num_classes=c['num_classes'], layout=c['layout'], num_persons=c['num_persons'],
                       **OURS[side])


def inputs(config, batch, frames):
    c = CONFIGS[config]
    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch, 3, frames, c['V'], c['M'], generator=g),
            torch.randint(0, c['num_classes'], (batch,), generator=g))


def make_step(model, mode, precision, x, y):
    "One eval forward or one training step of `model`, as a closure."
    autocast = lambda: torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16')
    if mode == 'eval':
        model.eval()
        def step():
            with torch.inference_mode(), autocast():
                model(x)
        return step
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    def step():
        opt.zero_grad(set_to_none=True)
        with autocast():
            _, logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
        return loss
    return step


def count_flops(model, mode, precision, x, y):
    from torch.utils.flop_counter import FlopCounterMode
    if mode == 'eval':          # forward only, autograd on: FlopCounterMode's module hooks fail under no_grad
        model.eval()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=precision == 'bf16'), \
                FlopCounterMode(display=False) as fc:
            model(x)
        return fc.get_total_flops()
    step = make_step(model, mode, precision, x, y)
    with FlopCounterMode(display=False) as fc:
        step()
    return fc.get_total_flops()


MATMULS = {'square_2048': (2048, 2048, 2048),         # (m, k, n): the machine's matmul rate
           'conv1x1_typical': (16 * 64 * 17, 64, 192)}  # layers 1–4, FineGym, batch 16: N·T·V rows, 64 → 3·64 channels


def matmul_steps():
    "The matmuls timed in the same rounds as the models, per (dtype, shape name): callable and FLOPs."
    out = {}
    for dt_name, dt in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
        for name, (m, k, n) in MATMULS.items():
            a, b = torch.randn(m, k).to(dt), torch.randn(k, n).to(dt)
            out[('matmul', dt_name, name)] = ((lambda a=a, b=b: a @ b), 2 * m * k * n)
    return out


def interleave(steps, reps, warmup):
    "Run the callables in turn, `reps` rounds after `warmup`, the starting one rotating; seconds per callable."
    names = list(steps)
    for _ in range(warmup):
        for n in names: steps[n]()
    ts = {n: [] for n in names}
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            t0 = time.perf_counter(); steps[n](); ts[n].append(time.perf_counter() - t0)
    return ts


def vm_hwm_mb():
    "This process's peak resident set (VmHWM: per address space, unlike ru_maxrss, which a child inherits)."
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith('VmHWM:'): return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_one(job):
    "In a fresh process: peak RSS of `side` for (config, mode, precision)."
    torch.set_num_threads(job['threads'])
    model = build(job['side'], job['config'], job.get('authors'))
    x, y = inputs(job['config'], job['batch'], job['frames'])
    step = make_step(model, job['mode'], job['precision'], x, y)
    with open('/proc/self/statm') as f: before = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20
    for _ in range(job['steps']): step()
    peak = vm_hwm_mb()
    return dict(kind='memory', side=job['side'], config=job['config'], mode=job['mode'],
                precision=job['precision'], peak_rss_mb=round(peak), rss_before_steps_mb=round(before),
                above_start_mb=round(peak - before))


def emit(d, rows):
    rows.append(d)
    print(json.dumps(d), flush=True)


def fmt_ratio(r): return '–' if r is None else f'{r:.2f}×'


def markdown(rows):
    "The tables of benchmarks/README.md from the printed rows."
    env = next(r for r in rows if r['kind'] == 'env')
    print(f"\n{env['date']}, {env['cpu']}, {env['threads']} threads, torch {env['torch']}, "
          f"load average at start {env['loadavg']}\n")
    times = {(r['side'], r['config'], r['mode'], r['precision']): r for r in rows if r['kind'] == 'time'}
    ratios = {(r['config'], r['mode'], r['precision']): r for r in rows if r['kind'] == 'ratio'}
    mems = {(r['side'], r['config'], r['mode'], r['precision']): r for r in rows if r['kind'] == 'memory'}
    print('| config | mode | precision | authors samples/s | ours samples/s | ours / authors (ratio of medians; '
          'median of per-round ratios; ratio of fastest steps) | ours GFLOP/s (fraction of matmul peak) | '
          'authors GFLOP/s (fraction) |')
    print('|---|---|---|---:|---:|---|---|---|')
    def gf(r): return f"{r['gflops_per_s']} ({r['fraction_of_peak']:.0%})" if r else '–'
    for (side, config, mode, prec), r in times.items():
        if side != 'ours': continue
        a = times.get(('authors', config, mode, prec))
        q = ratios.get((config, mode, prec), {})
        print(f"| {config} | {mode} | {prec} | {a['samples_per_s'] if a else '–'} | {r['samples_per_s']} | "
              f"**{fmt_ratio(q.get('speed_ratio_of_medians'))}**; {fmt_ratio(q.get('speed_median_of_round_ratios'))}; "
              f"{fmt_ratio(q.get('speed_ratio_of_minimums'))} | "
              f"{gf(r)} | {gf(a)} |")
    others = [(k, r) for k, r in times.items() if k[0] not in ('ours', 'authors')]
    if others:
        print('\n| variant | config | mode | precision | samples/s | vs authors, same rounds |')
        print('|---|---|---|---|---:|---|')
        for (side, config, mode, prec), r in others:
            a = times.get(('authors', config, mode, prec))
            print(f"| {side} | {config} | {mode} | {prec} | {r['samples_per_s']} | "
                  f"{fmt_ratio(a['step_s_median'] / r['step_s_median'] if a else None)} |")
    if mems:
        print('\n| config | mode | precision | authors peak RSS MB (above start) | ours peak RSS MB (above start) | ours / authors peak RSS |')
        print('|---|---|---|---:|---:|---|')
        for (side, config, mode, prec), r in mems.items():
            if side != 'ours': continue
            a = mems.get(('authors', config, mode, prec))
            am = f"{a['peak_rss_mb']} ({a['above_start_mb']})" if a else '–'
            print(f"| {config} | {mode} | {prec} | {am} | "
                  f"{r['peak_rss_mb']} ({r['above_start_mb']}) | "
                  f"**{fmt_ratio(r['peak_rss_mb'] / a['peak_rss_mb'] if a else None)}** |")
    pk = [r for r in rows if r['kind'] == 'peak']
    print('\n| matmul, timed in the rounds of | shape | fp32 GFLOP/s | bf16 GFLOP/s |')
    print('|---|---|---:|---:|')
    for key in dict.fromkeys((r['config'], r['mode'], r['name']) for r in pk):
        g = {r['dtype']: r for r in pk if (r['config'], r['mode'], r['name']) == key}
        print(f"| {key[0]} {key[1]}: {key[2]} | {g['fp32']['shape']} | {g['fp32']['gflops_per_s']} | "
              f"{g['bf16']['gflops_per_s']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--authors', default=os.environ.get('MDR_AUTHORS_DIR'),
                    help="checkout of github.com/dingyn-Reno/MDR-GCN (default: env MDR_AUTHORS_DIR)")
    ap.add_argument('--sides', default='ours', help="ours, ours-store, ours-naive (comma-separated); the "
                    "authors' model is added when its checkout is found")
    ap.add_argument('--configs', default='gym,ntu')
    ap.add_argument('--modes', default='eval,train')
    ap.add_argument('--precision', default='fp32,bf16', help='fp32, bf16 or both (comma-separated)')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--frames', type=int, default=64)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--reps', type=int, default=11, help='interleaved rounds per (config, mode)')
    ap.add_argument('--memory', default='train', help="modes whose peak RSS is measured in subprocesses "
                    "('train', 'eval,train' or 'none')")
    ap.add_argument('--memory-steps', type=int, default=3)
    ap.add_argument('--markdown', action='store_true', help="also print the README's tables")
    ap.add_argument('--memory-one', help=argparse.SUPPRESS)    # internal: one memory measurement in this process
    a = ap.parse_args()
    if a.memory_one:
        print(json.dumps(memory_one(json.loads(a.memory_one))), flush=True)
        return
    for name, value, ok in (('--precision', a.precision, {'fp32', 'bf16'}), ('--sides', a.sides, set(OURS)),
                            ('--configs', a.configs, set(CONFIGS)), ('--modes', a.modes, {'eval', 'train'})):
        bad = set(value.split(',')) - ok
        if bad: ap.error(f"{name}: unknown {sorted(bad)}; choose from {sorted(ok)}")
    torch.set_num_threads(a.threads)
    precisions, rows = a.precision.split(','), []
    Model, why = authors_model_class(a.authors)
    sides = (['authors'] if Model else []) + a.sides.split(',')
    emit(dict(kind='env', date=datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
              torch=torch.__version__, cpu=cpu_model(), cores=os.cpu_count(), threads=a.threads, batch=a.batch,
              frames=a.frames, reps=a.reps, loadavg=os.getloadavg()[0], authors=a.authors if Model else None,
              authors_unavailable=why), rows)
    for config in a.configs.split(','):
        x, y = inputs(config, a.batch, a.frames)
        for mode in a.modes.split(','):
            steps, flops = {}, {}
            for side in sides:
                model = build(side, config, a.authors)
                for prec in precisions:
                    flops[(side, prec)] = count_flops(model, mode, prec, x, y)
                    steps[(side, prec)] = make_step(model, mode, prec, x, y)
            mm = matmul_steps()
            ts = interleave({**steps, **{k: f for k, (f, _) in mm.items()}}, a.reps, a.warmup)
            pk = {}
            for (_, dt, name), (_, fl) in mm.items():
                pk[(dt, name)] = fl / statistics.median(ts.pop(('matmul', dt, name))) / 1e9
                emit(dict(kind='peak', config=config, mode=mode, dtype=dt, name=name,
                          shape='{}×{} @ {}×{}'.format(*(MATMULS[name][i] for i in (0, 1, 1, 2))),
                          gflops_per_s=round(pk[(dt, name)], 1)), rows)
            for (side, prec), t in ts.items():
                med = statistics.median(t)
                gf = flops[(side, prec)] / med / 1e9
                emit(dict(kind='time', side=side, config=config, mode=mode, precision=prec,
                          step_s_median=round(med, 4), step_s_min=round(min(t), 4),
                          samples_per_s=round(a.batch / med, 2), gflop_per_step=round(flops[(side, prec)] / 1e9, 2),
                          gflops_per_s=round(gf, 1), fraction_of_peak=round(gf / pk[(prec, 'square_2048')], 3),
                          fraction_of_typical=round(gf / pk[(prec, 'conv1x1_typical')], 3)), rows)
            for prec in precisions:
                if ('authors', prec) not in ts:
                    emit(dict(kind='ratio', config=config, mode=mode, precision=prec, speed_ratio_of_medians=None,
                              speed_median_of_round_ratios=None, note=f'ratio unavailable: {why}'), rows)
                    continue
                ta, to = ts[('authors', prec)], ts[('ours', prec)]
                emit(dict(kind='ratio', config=config, mode=mode, precision=prec,
                          speed_ratio_of_medians=round(statistics.median(ta) / statistics.median(to), 3),
                          speed_median_of_round_ratios=round(statistics.median(p / q for p, q in zip(ta, to)), 3),
                          speed_ratio_of_minimums=round(min(ta) / min(to), 3)), rows)
            if 'bf16' in precisions and 'fp32' in precisions and ('authors', 'fp32') in ts:
                emit(dict(kind='ratio', config=config, mode=mode, precision='ours bf16 / authors fp32',
                          speed_ratio_of_medians=round(statistics.median(ts[('authors', 'fp32')]) /
                                                       statistics.median(ts[('ours', 'bf16')]), 3),
                          speed_median_of_round_ratios=round(statistics.median(
                              p / q for p, q in zip(ts[('authors', 'fp32')], ts[('ours', 'bf16')])), 3)), rows)
    mem_modes = [] if a.memory == 'none' else [m for m in a.memory.split(',') if m in a.modes.split(',')]
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    for config in a.configs.split(','):
        for mode in mem_modes:
            for prec in precisions:
                for side in sides:
                    job = dict(side=side, config=config, mode=mode, precision=prec, threads=a.threads,
                               batch=a.batch, frames=a.frames, steps=a.memory_steps, authors=a.authors)
                    r = subprocess.run([sys.executable, __file__, '--memory-one', json.dumps(job)], env=env,
                                       capture_output=True, text=True)
                    if r.returncode:
                        emit(dict(kind='memory', side=side, config=config, mode=mode, precision=prec,
                                  error=r.stderr.strip().splitlines()[-1:]), rows)
                    else:
                        emit(json.loads(r.stdout.strip().splitlines()[-1]), rows)
    if a.markdown: markdown([r for r in rows if 'error' not in r])


if __name__ == '__main__':
    main()
