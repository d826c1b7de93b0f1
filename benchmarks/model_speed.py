"""Model speed and memory: one JSON line per (model, path, config, mode).

    python benchmarks/model_speed.py                  # the README table (mdrgcn, naive+fused, gym+ntu, eval+train)
    python benchmarks/model_speed.py --quick          # fewer timed steps, for a first look
    python benchmarks/model_speed.py --paths fused,fused-cl,fused-compile --configs gym --modes train

Every measurement runs in a fresh subprocess (so `peak_rss_mb` is that process's own peak resident set:
interpreter + torch + model + activations), with `--threads` intra-op threads (default 2).
Input: batch 16, 64 frames; gym = 3×64×17×1 (FineGym99, 99 classes), ntu = 3×64×25×2 (NTU60, 60 classes).
eval = forward under `torch.inference_mode()`; train = forward + cross-entropy + backward + SGD step
(Nesterov momentum 0.9, weight decay 1e-4). `samples_per_s` is batch / median step time over
`--steps` timed steps after `--warmup` untimed ones; `samples_per_s_best` uses the fastest step (less
sensitive to other processes on a shared machine).

Paths: `naive` (per-subset didactic blocks), `fused` (the default), `fused-store` (fused without recomputing
R in backward), `fused-cl` (fused, channels_last memory format), `fused-compile` (fused + torch.compile,
inductor; the first step, which includes compiling, is reported separately).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {'gym': dict(num_classes=99, layout='coco17', num_persons=1, V=17, M=1),
           'ntu': dict(num_classes=60, layout='ntu25', num_persons=2, V=25, M=2)}
# the authors' implementation, same machine type, 2 threads, batch 16, 64 frames (samples/s, GB)
REFERENCE = {('gym', 'eval'): 22.3, ('gym', 'train'): 9.1, ('ntu', 'eval'): 9.3, ('ntu', 'train'): 2.4}
REFERENCE_RSS_GB = {('gym', 'train'): 1.67, ('ntu', 'train'): 4.48}


def measure(model_name, path, config, mode, threads, batch, frames, warmup, steps):
    import torch
    torch.set_num_threads(threads)
    from mdr_gcn_nb.model import build_model
    c = CONFIGS[config]
    torch.manual_seed(0)
    model = build_model(model_name, fused=path != 'naive', recompute=path != 'fused-store',
                        num_classes=c['num_classes'], layout=c['layout'], num_persons=c['num_persons'])
    x = torch.randn(batch, 3, frames, c['V'], c['M'])
    y = torch.randint(0, c['num_classes'], (batch,))
    if path == 'fused-cl':
        model = model.to(memory_format=torch.channels_last)
    step_model = model
    compile_s = None
    if path == 'fused-compile':
        step_model = torch.compile(model)
    if mode == 'eval':
        model.eval()
        def step():
            with torch.inference_mode():
                step_model(x)
    else:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
        def step():
            opt.zero_grad(set_to_none=True)
            _, logits = step_model(x)
            torch.nn.functional.cross_entropy(logits, y).backward()
            opt.step()
    times = []
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if i == 0 and path == 'fused-compile':
            compile_s = dt
        if i >= warmup:
            times.append(dt)
    med = statistics.median(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024       # Linux: KiB
    out = dict(model=model_name, path=path, config=config, mode=mode, batch=batch, frames=frames,
               threads=threads, steps=steps, samples_per_s=round(batch / med, 2),
               samples_per_s_best=round(batch / min(times), 2),
               step_s_median=round(med, 4), step_s_min=round(min(times), 4), peak_rss_mb=round(rss_mb),
               reference_samples_per_s=REFERENCE[(config, mode)] if model_name == 'mdrgcn' else None,
               reference_peak_rss_gb=REFERENCE_RSS_GB.get((config, mode)) if model_name == 'mdrgcn' else None,
               torch=torch.__version__)
    if compile_s is not None:
        out['first_step_s_incl_compile'] = round(compile_s, 1)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models', default='mdrgcn')
    ap.add_argument('--paths', default='naive,fused')
    ap.add_argument('--configs', default='gym,ntu')
    ap.add_argument('--modes', default='eval,train')
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--frames', type=int, default=64)
    ap.add_argument('--warmup', type=int, default=2)
    ap.add_argument('--steps', type=int, default=7)
    ap.add_argument('--quick', action='store_true', help='warm-up 1, 5 timed steps')
    ap.add_argument('--one', help=argparse.SUPPRESS)          # internal: run one measurement in this process
    a = ap.parse_args()
    if a.quick:
        a.warmup, a.steps = 1, 5
    if a.one:
        print(json.dumps(measure(**json.loads(a.one))), flush=True)
        return
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    for model in a.models.split(','):
        for config in a.configs.split(','):
            for mode in a.modes.split(','):
                for path in a.paths.split(','):
                    job = dict(model_name=model, path=path, config=config, mode=mode, threads=a.threads,
                               batch=a.batch, frames=a.frames, warmup=a.warmup, steps=a.steps)
                    r = subprocess.run([sys.executable, __file__, '--one', json.dumps(job)], env=env,
                                       capture_output=True, text=True)
                    if r.returncode:
                        print(json.dumps(dict(model=model, path=path, config=config, mode=mode,
                                              error=r.stderr.strip().splitlines()[-1:])), flush=True)
                    else:
                        print(r.stdout.strip().splitlines()[-1], flush=True)


if __name__ == '__main__':
    main()
