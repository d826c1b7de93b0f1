"""What only a GPU can show: the training step on CUDA with autocast, and the model's GPU speed beside the
authors' code, measured in one process. Prints one JSON line per result.

    python benchmarks/gpu_check.py --authors PATH [--out DIR] [--reps 20] [--main-job] | tee results.jsonl
    python benchmarks/gpu_check.py --table results.jsonl       # the markdown tables of benchmarks/GPU.md (any machine)

PATH is a checkout of github.com/dingyn-Reno/MDR-GCN (default: $MDR_AUTHORS_DIR); without it the speed part
times only this package. Parts:

1. `equivalence`: the per-subset and the fused model on CUDA (float64 and float32), worst relative difference
   of features, logits and gradients (`mdr_gcn_nb.model.compare_paths`).
2. `amp_step`: 30 training steps of MDR-GCN + RDL (CE + L_R, Eq 13) on one fixed random batch, model under
   `torch.autocast('cuda', bfloat16)` and the loss/centres in float32, beside the same steps in float32:
   the loss must stay finite and fall, the centres stay float32.
3. `speed`: batch 64 (the paper's batch), 64 frames; FineGym (3x64x17x1, 99 classes) and NTU (3x64x25x2,
   60 classes); eval (forward under inference_mode) and train (forward + CE + backward + SGD step), each in
   float32 and under bfloat16 autocast. The sides (authors', fused, fused without recompute) run interleaved,
   A B C A B C ..., on the same inputs; each sample is the CUDA-event time of `--inner` steps. Peak GPU memory
   of one train step per side comes from `torch.cuda.max_memory_allocated` (allocator peak, not the process).
4. `--main-job`: the README's main job (`configs/sample_fsd10_joint.yaml`) on CUDA, 3 seeds, autocast bf16 and
   float32, held-out top-1 from each run's log.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from mdr_gcn_nb.model import build_model, compare_paths, from_authors, PRESETS   # noqa: E402
from mdr_gcn_nb.losses import build_criterion                        # noqa: E402

CONFIGS = {'gym': dict(V=17, M=1, K=99, preset='gym', authors=('graph.gym.Graph', {'labeling_mode': 'spatial'})),
           'ntu': dict(V=25, M=2, K=60, preset='ntu60', authors=('graph.ntu_rgb_d.Graph', {'labeling_mode': 'spatial'}))}


def emit(**kw):
    print(json.dumps(kw), flush=True)


def authors_model(path, cfg):
    "The authors' `model/MDRGCN.py` Model, imported from their checkout."
    if str(path) not in sys.path: sys.path.insert(0, str(path))
    from model.MDRGCN import Model
    graph, graph_args = cfg['authors']
    return Model(num_class=cfg['K'], num_point=cfg['V'], num_person=cfg['M'], graph=graph, graph_args=graph_args)


def equivalence(dev):
    for dtype in (torch.float64, torch.float32):
        for name, c in CONFIGS.items():
            torch.manual_seed(0)
            naive = build_model('mdrgcn', fused=False, **PRESETS[c['preset']]).to(dev, dtype)
            x = torch.randn(4, 3, 16, c['V'], c['M'], device=dev, dtype=dtype)
            d = compare_paths(naive, x)
            emit(part='equivalence', config=name, dtype=str(dtype).split('.')[-1], **{k: float(f'{v:.3g}') for k, v in d.items()})


def authors_equal(dev, authors_path):
    "The package's `authors` configuration against their model on CUDA: same weights, same logits and gradients."
    if not authors_path: return emit(part='authors_equal', skipped='no --authors checkout')
    for dtype in (torch.float64, torch.float32):
        for name, c in CONFIGS.items():
            torch.manual_seed(0)
            theirs = authors_model(authors_path, c).to(dev, dtype).train()
            ours = from_authors(theirs.state_dict(), 'gym' if name == 'gym' else 'ntu60').to(dev, dtype).train()
            x = torch.randn(4, 3, 16, c['V'], c['M'], device=dev, dtype=dtype)
            outs = [m(x) for m in (theirs, ours)]
            for f, l in outs: (f.square().sum() + l.square().sum()).backward()
            rel = lambda a, b: ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()
            g_t = torch.cat([p.grad.flatten() for p in theirs.parameters() if p.grad is not None])
            g_o = sum(p.grad.abs().sum().item() for p in ours.parameters() if p.grad is not None)
            emit(part='authors_equal', config=name, dtype=str(dtype).split('.')[-1], logits=float(f'{rel(outs[1][1], outs[0][1]):.3g}'),
                 features=float(f'{rel(outs[1][0], outs[0][0]):.3g}'),
                 grad_abs_sum_rel=float(f'{abs(g_o - g_t.abs().sum().item()) / g_t.abs().sum().item():.3g}'))


def amp_step(dev, steps=30):
    c = CONFIGS['gym']
    out = {}
    for mode in ('fp32', 'bf16'):
        torch.manual_seed(0)
        model = build_model('mdrgcn', **PRESETS[c['preset']]).to(dev)
        crit = build_criterion('rdl', num_classes=c['K']).to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
        copt = torch.optim.SGD(crit.centre_parameters(), lr=0.1)
        x = torch.randn(32, 3, 64, c['V'], c['M'], device=dev)
        y = torch.randint(0, c['K'], (32,), device=dev)
        losses = []
        t0 = time.perf_counter()
        for _ in range(steps):
            with torch.autocast('cuda', dtype=torch.bfloat16, enabled=mode == 'bf16'):
                feats, logits = model(x)
            loss, _, terms = crit(feats.float(), logits.float(), y)      # the loss and the centres in float32
            opt.zero_grad(set_to_none=True); copt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step(); copt.step()
            losses.append(loss.item())                                   # host sync: read the loss
        out[mode] = losses
        emit(part='amp_step', precision=mode, steps=steps, first_loss=round(losses[0], 4), last_loss=round(losses[-1], 4),
             all_finite=all(map(lambda v: v == v and abs(v) != float('inf'), losses)),
             feats_dtype=str(feats.dtype), centres_dtype=str(crit.centre_parameters()[0].dtype),
             seconds=round(time.perf_counter() - t0, 2))
    emit(part='amp_step', first_step_rel_diff=abs(out['bf16'][0] - out['fp32'][0]) / abs(out['fp32'][0]))


def sides_for(cfg, authors_path, dev):
    sides = {}
    if authors_path:
        torch.manual_seed(0); sides['authors'] = authors_model(authors_path, cfg).to(dev)
    torch.manual_seed(0); sides['fused'] = build_model('mdrgcn', **PRESETS[cfg['preset']]).to(dev)
    torch.manual_seed(0); sides['authors_cfg'] = build_model('mdrgcn_authors', **PRESETS[cfg['preset']]).to(dev)
    torch.manual_seed(0); sides['fused_store'] = build_model('mdrgcn', recompute=False, **PRESETS[cfg['preset']]).to(dev)
    return sides


def make_step(model, mode, precision, x, y):
    amp = dict(device_type='cuda', dtype=torch.bfloat16, enabled=precision == 'bf16')
    if mode == 'eval':
        model.eval()
        def step():
            with torch.inference_mode(), torch.autocast(**amp): model(x)
        return step
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=1e-4)
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(**amp): _, logits = model(x)
        F.cross_entropy(logits.float(), y).backward()
        opt.step()
    return step


def speed(dev, authors_path, reps, inner, batch, frames):
    for name, c in CONFIGS.items():
        sides = sides_for(c, authors_path, dev)
        g = torch.Generator(device='cpu').manual_seed(1)
        x = torch.randn(batch, 3, frames, c['V'], c['M'], generator=g).to(dev)
        y = torch.randint(0, c['K'], (batch,), generator=g).to(dev)
        for mode in ('eval', 'train'):
            for precision in ('fp32', 'bf16'):
                steps = {s: make_step(m, mode, precision, x, y) for s, m in sides.items()}
                for s in steps.values():                                 # warm-up (cuDNN autotune, allocator)
                    for _ in range(3): s()
                torch.cuda.synchronize()
                times = {s: [] for s in steps}
                for _ in range(reps):                                    # interleaved: A B C A B C ...
                    for s, fn in steps.items():
                        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        a.record()
                        for _ in range(inner): fn()
                        b.record(); b.synchronize()                      # host waits for the GPU here
                        times[s].append(a.elapsed_time(b) / 1000 / inner)
                peak = {}
                if mode == 'train':
                    for s, fn in steps.items():
                        torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
                        fn(); torch.cuda.synchronize()
                        peak[s] = torch.cuda.max_memory_allocated() / 2**20
                med = {s: statistics.median(t) for s, t in times.items()}
                for s in steps:
                    row = dict(part='speed', config=name, mode=mode, precision=precision, side=s, batch=batch, frames=frames,
                               samples_per_s=round(batch / med[s], 1), step_ms_median=round(1000 * med[s], 3),
                               step_ms_min=round(1000 * min(times[s]), 3), reps=reps, inner=inner)
                    if peak: row['peak_mem_mb'] = round(peak[s])
                    if 'authors' in med and s != 'authors':
                        row['speed_vs_authors'] = round(med['authors'] / med[s], 3)
                        if peak: row['mem_vs_authors'] = round(peak[s] / peak['authors'], 3)
                    emit(**row)
        del sides
        torch.cuda.empty_cache()


def main_job(out, seeds=(0, 1, 2)):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for seed in seeds:
        for prec, amp in (('bf16', 'true'), ('fp32', 'false')):
            name = f'gpu_{prec}_s{seed}'
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, '-m', 'mdr_gcn_nb.cli', 'train', '--config', 'configs/sample_fsd10_joint.yaml',
                                '--device', 'cuda', '--seed', str(seed), '--name', name, '--out-dir', str(out),
                                '--no-progress', f'amp={amp}', 'threads=0'], cwd=ROOT, env=env, capture_output=True, text=True)
            tail = (r.stdout + r.stderr).strip().splitlines()[-12:]
            acc = None
            log = Path(out) / name / 'log.csv'
            if log.exists():
                import csv
                rows = list(csv.DictReader(log.open()))
                acc = dict(best_top1=max(float(r_['test_top1']) for r_ in rows), final_top1=float(rows[-1]['test_top1']))
            emit(part='main_job', precision=prec, seed=seed, rc=r.returncode, seconds=round(time.perf_counter() - t0, 1),
                 best=acc, tail=tail if r.returncode else tail[-3:])


def table(path):
    "Markdown tables (speed, main job) from the JSON lines a run printed."
    rows = [json.loads(l) for l in Path(path).read_text().splitlines() if l.startswith('{')]
    env = next((r for r in rows if r['part'] == 'env'), {})
    print(f"{env.get('device')}, torch {env.get('torch')} (CUDA {env.get('cuda')}), {env.get('date')}; "
          f"TF32 in cuDNN convolutions {'on' if env.get('tf32_cudnn') else 'off'} (torch's default), in matmuls "
          f"{'on' if env.get('tf32_matmul') else 'off'}\n")
    print('| config | mode | precision | authors, samples/s | fused | fused, no recompute | peak MB: authors / fused / no recompute |')
    print('|---|---|---|---:|---:|---:|---|')
    sp = [r for r in rows if r['part'] == 'speed']
    for key in dict.fromkeys((r['config'], r['mode'], r['precision']) for r in sp):
        by = {r['side']: r for r in sp if (r['config'], r['mode'], r['precision']) == key}
        cell = lambda s: (f"{by[s]['samples_per_s']:.0f}" + (f" ({by[s]['speed_vs_authors']:.2f}×)" if 'speed_vs_authors' in by[s] else '')) if s in by else '–'
        mem = ' / '.join(str(by[s].get('peak_mem_mb', '–')) for s in ('authors', 'fused', 'fused_store') if s in by)
        if 'authors_cfg' in by: mem += f" (package `mdrgcn_authors`: {cell('authors_cfg')}, {by['authors_cfg'].get('peak_mem_mb', '–')} MB)" 
        print(f"| {key[0]} | {key[1]} | {key[2]} | {cell('authors')} | {cell('fused')} | {cell('fused_store')} | {mem if key[1] == 'train' else '–'} |")
    mj = [r for r in rows if r['part'] == 'main_job' and r.get('best')]
    if mj:
        print('\n| main job on CUDA | seeds | best held-out top-1 per seed | mean ± sd | seconds per run |')
        print('|---|---|---|---|---|')
        for prec in dict.fromkeys(r['precision'] for r in mj):
            acc = [r['best']['best_top1'] for r in mj if r['precision'] == prec]
            secs = [r['seconds'] for r in mj if r['precision'] == prec]
            sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
            print(f"| {prec} | {len(acc)} | {' / '.join(f'{a:.0f}' for a in acc)} | {statistics.mean(acc):.1f} ± {sd:.1f} | "
                  f"{statistics.mean(secs):.0f} |")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == '--table': return table(sys.argv[2])
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--authors', default=os.environ.get('MDR_AUTHORS_DIR'))
    ap.add_argument('--out', default='runs/gpu_check')
    ap.add_argument('--reps', type=int, default=15)
    ap.add_argument('--inner', type=int, default=3)
    ap.add_argument('--batch', type=int, default=64)
    ap.add_argument('--frames', type=int, default=64)
    ap.add_argument('--parts', default='env,equivalence,authors_equal,amp_step,speed')
    ap.add_argument('--main-job', action='store_true')
    a = ap.parse_args()
    if not torch.cuda.is_available(): sys.exit('gpu_check: no CUDA device')
    dev = torch.device('cuda')
    parts = a.parts.split(',')
    if 'env' in parts:
        emit(part='env', torch=torch.__version__, cuda=torch.version.cuda, device=torch.cuda.get_device_name(),
             cudnn=torch.backends.cudnn.version(), cudnn_benchmark=torch.backends.cudnn.benchmark,
             tf32_matmul=torch.backends.cuda.matmul.allow_tf32, tf32_cudnn=torch.backends.cudnn.allow_tf32,
             authors=bool(a.authors), date=time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))
    if 'equivalence' in parts: equivalence(dev)
    if 'authors_equal' in parts: authors_equal(dev, a.authors)
    if 'amp_step' in parts: amp_step(dev)
    if 'speed' in parts: speed(dev, a.authors, a.reps, a.inner, a.batch, a.frames)
    if a.main_job: main_job(a.out)


if __name__ == '__main__':
    main()
