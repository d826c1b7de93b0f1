"""Opening a file never runs its code: crafted checkpoints, score files and data pickles whose loading would
create a marker file are refused, in one line, through every entry point a user has (`mdr-gcn test`,
`train --resume` / `--resume-from`, `ensemble`, `build_dataset` and `train` on a PYSKL or FSD-10 path); the
marker is never created. Real and generated files still load, and older checkpoints still resume exactly."""
import builtins, os, pickle, random, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mdr_gcn_nb.data.datasets import DataConfig, build_dataset
from mdr_gcn_nb.data.readers import DataFormatError, load_fsd10, load_pyskl, safe_unpickle
from mdr_gcn_nb.checkpoint import load_checkpoint
from mdr_gcn_nb.core import ConfigError
from mdr_gcn_nb.metrics import load_scores
from mdr_gcn_nb.runtime import set_rng_state
from test_cli import main_in_process                     # `mdr-gcn ARGS` in this process: (status, stdout, stderr)

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
REAL = Path(os.environ.get("MDR_REAL_SAMPLES", ROOT.parent / "shared" / "real_samples"))
CONFIG = "configs/sample_fsd10_joint.yaml"
TINY = ["model.args.channels=[16,16,32,32]", "model.args.strides=[1,2,1,2]", "data.window=8", "data.max_samples=40",
        "optim.batch_size=8", "optim.epochs=2", "optim.milestones=[1]", "optim.warmup_epochs=0.5", "threads=1",
        "progress=false"]


# ---------------------------------------------------------------- payloads
class SystemPayload:
    "Unpickling it calls os.system (GLOBAL posix.system)."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


class ExecPayload:
    "Unpickling it calls builtins.exec on Python source."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


PAYLOADS = {"os.system": SystemPayload, "builtins.exec": ExecPayload}
REFUSED = {"os.system": "posix.system", "builtins.exec": "builtin"}     # builtins.exec, or __builtin__.exec in protocols 0-2


@pytest.fixture(params=list(PAYLOADS))
def payload(request, tmp_path):
    "(kind, payload object, marker path); the test fails if the marker exists afterwards."
    marker = tmp_path / "PWNED"
    yield request.param, PAYLOADS[request.param](marker), marker
    assert not marker.exists(), f"the {request.param} payload ran"


def test_the_payloads_do_run_under_plain_pickle(tmp_path):
    "Control: the markers do appear when the same bytes go through pickle.load, so 'not created' means refused."
    for make in PAYLOADS.values():
        marker = tmp_path / "PWNED"
        pickle.loads(pickle.dumps(make(marker)))
        assert marker.exists(); marker.unlink()


def refused_in_one_line(rc, err, *words):
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, f"rc={rc}, stderr:\n{err}"
    for w in words: assert w in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    "A finished tiny training run on data_samples/fsd10 (checkpoints and scores written by this package)."
    out = tmp_path_factory.mktemp("run")
    rc, o, e = main_in_process("train", "--config", CONFIG, f"out_dir={out}", *TINY)
    assert rc == 0, e
    return out / "sample_fsd10_joint"


# ---------------------------------------------------------------- checkpoints
def evil_checkpoints(tmp_path, obj, good=None) -> dict:
    "Three ways to carry the payload: torch.save of a small dict, a raw pickle named .pt, a real checkpoint tampered with."
    files = {"small": tmp_path / "small.pt", "raw": tmp_path / "raw.pt"}
    torch.save({"format": "mdr-gcn-checkpoint-1", "model": {}, "config": {}, "extra": obj}, files["small"])
    files["raw"].write_bytes(pickle.dumps({"model": {}, "config": {}, "extra": obj}))
    if good is not None:
        ck = torch.load(good, weights_only=True)
        ck["history"].append({"epoch": obj})
        files["tampered"] = tmp_path / "tampered.pt"
        torch.save(ck, files["tampered"])
    return files


def test_load_checkpoint_refuses_code(tmp_path, payload, run):
    kind, obj, marker = payload
    for name, p in evil_checkpoints(tmp_path, obj, run / "last.pt").items():
        with pytest.raises(ConfigError) as e:
            load_checkpoint(p)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{p}: refused to load: "), (name, msg)
        assert REFUSED[kind] in msg or name == "raw", (name, msg)          # torch's zip files name the global


def test_mdr_gcn_test_refuses_a_crafted_checkpoint(tmp_path, payload, run):
    kind, obj, marker = payload
    for name, p in evil_checkpoints(tmp_path, obj, run / "best.pt").items():
        refused_in_one_line(*main_in_process("test", "--checkpoint", p, "--no-progress")[::2], f"{p}: refused to load")


def test_mdr_gcn_test_refuses_in_a_real_process(tmp_path, run):
    "The console script itself: exit status 2, one line on stderr, no marker."
    marker = tmp_path / "PWNED"
    p = evil_checkpoints(tmp_path, SystemPayload(marker), run / "best.pt")["tampered"]
    r = subprocess.run([sys.executable, "-m", "mdr_gcn_nb.cli", "test", "--checkpoint", str(p)], cwd=ROOT,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    line = refused_in_one_line(r.returncode, r.stderr, "refused to load", "posix.system")
    assert line.startswith("mdr-gcn test: error: ")
    assert not marker.exists()


def test_resume_refuses_a_crafted_checkpoint(tmp_path, payload, run):
    kind, obj, marker = payload
    for name, p in evil_checkpoints(tmp_path, obj, run / "last.pt").items():
        rc, _, err = main_in_process("train", "--config", CONFIG, f"out_dir={tmp_path / name}", "--resume-from", p, *TINY)
        refused_in_one_line(rc, err, f"{p}: refused to load")
    # --resume reads <out_dir>/<name>/last.pt
    (tmp_path / "o" / "sample_fsd10_joint").mkdir(parents=True)
    evil = evil_checkpoints(tmp_path, obj, run / "last.pt")["tampered"]
    os.replace(evil, tmp_path / "o" / "sample_fsd10_joint" / "last.pt")
    rc, _, err = main_in_process("train", "--config", CONFIG, f"out_dir={tmp_path / 'o'}", "--resume", *TINY)
    refused_in_one_line(rc, err, "last.pt", REFUSED[kind])


def test_checkpoints_hold_nothing_beyond_torch_safe_types(run):
    for name in ("last.pt", "best.pt"):
        assert torch.serialization.get_unsafe_globals_in_checkpoint(run / name) == []
        ck = torch.load(run / name, weights_only=True)                      # torch's own safe loader, no allow-list
        assert ck["model"] and isinstance(ck["rng"]["numpy"]["key"], torch.Tensor)


def test_trusted_load_is_explicit(tmp_path, run):
    "trusted=True is the one way to unpickle anything; it does run the payload (which is why it is opt-in)."
    marker = tmp_path / "PWNED"
    p = evil_checkpoints(tmp_path, SystemPayload(marker), run / "last.pt")["tampered"]
    with pytest.raises(ConfigError, match="trusted=True"):
        load_checkpoint(p)
    assert not marker.exists()
    load_checkpoint(p, trusted=True)
    assert marker.exists()


def to_old_format(ck: dict) -> dict:
    "A checkpoint as this package wrote it before the RNG states were tensors: python's tuple, numpy's uint32 array."
    py, npy = ck["rng"]["python"], ck["rng"]["numpy"]
    rng = dict(ck["rng"], python=(py["version"], tuple(py["state"].tolist()), py["gauss_next"]),
               numpy=(npy["kind"], npy["key"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    return dict(ck, rng=rng)


def test_older_checkpoints_load_and_resume_exactly(tmp_path, run):
    new = torch.load(run / "last.pt", weights_only=True)
    torch.save(to_old_format(new), tmp_path / "old.pt")
    assert "numpy.ndarray" in torch.serialization.get_unsafe_globals_in_checkpoint(tmp_path / "old.pt")
    old = load_checkpoint(tmp_path / "old.pt")
    assert isinstance(old["rng"]["numpy"][1], np.ndarray)
    draws = lambda: (random.random(), np.random.rand(), np.random.randn(), torch.rand(3).tolist())
    set_rng_state(new["rng"]); a = draws()
    set_rng_state(old["rng"]); b = draws()
    assert a == b
    # one more epoch from each: the same weights, bit for bit
    outs = {}
    for name, ck in (("new", run / "last.pt"), ("old", tmp_path / "old.pt")):
        over = [o for o in TINY if not o.startswith("optim.epochs")] + ["optim.epochs=3"]
        rc, _, err = main_in_process("train", "--config", CONFIG, f"out_dir={tmp_path / name}", "--resume-from", ck, *over)
        assert rc == 0, err
        outs[name] = load_checkpoint(tmp_path / name / "sample_fsd10_joint" / "last.pt")
    assert outs["new"]["global_step"] == outs["old"]["global_step"] > new["global_step"]
    for key in ("model", "criterion"):
        a, b = outs["new"][key], outs["old"][key]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------- score files
def test_ensemble_refuses_a_pickled_score_file(tmp_path, payload, run):
    kind, obj, marker = payload
    good = np.load(run / "scores_best.npz")
    arrays = {k: good[k] for k in good.files}
    arrays["sample_names"] = np.array([obj] + list(arrays["sample_names"][1:]), dtype=object)
    np.savez(tmp_path / "evil.npz", **arrays)
    with pytest.raises(ConfigError) as e:
        load_scores(tmp_path / "evil.npz")
    assert "\n" not in str(e.value) and "refused" in str(e.value)
    rc, _, err = main_in_process("ensemble", run / "scores_best.npz", tmp_path / "evil.npz")
    refused_in_one_line(rc, err, "evil.npz", "pickled object array")
    rc, _, err = main_in_process("ensemble", tmp_path / "evil.npz", run / "scores_best.npz")
    refused_in_one_line(rc, err, "evil.npz")


# ---------------------------------------------------------------- data pickles
def evil_fsd10(folder: Path, obj) -> Path:
    "An FSD-10 folder whose arrays are fine and whose label pickles carry the payload."
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        np.save(folder / f"{split}_data_25.npy", np.load(SAMPLES / "fsd10" / f"{split}_data_25.npy", mmap_mode="r")[:4])
        (folder / f"{split}_label_25.pkl").write_bytes(pickle.dumps(([obj, "b", "c", "d"], [0, 1, 2, 3])))
    return folder


def evil_pyskl(path: Path, obj) -> Path:
    d = safe_unpickle(SAMPLES / "gym" / "gym_synth.pkl")
    d["annotations"][0]["frame_dir"] = obj
    path.write_bytes(pickle.dumps(d, protocol=2))                         # mmcv's protocol
    return path


def test_readers_refuse_code_in_pickles(tmp_path, payload):
    kind, obj, marker = payload
    for proto in range(6):
        p = tmp_path / f"evil{proto}.pkl"
        p.write_bytes(pickle.dumps({"annotations": [obj]}, protocol=proto))
        for load in (safe_unpickle, load_pyskl):
            with pytest.raises(DataFormatError) as e:
                load(p)
            msg = str(e.value)
            assert "\n" not in msg and msg.startswith(f"{p}: refused to unpickle the global "), msg
            assert REFUSED[kind] in msg.split("global ")[1].split(":")[0], msg
    d = evil_fsd10(tmp_path / "fsd", obj)
    with pytest.raises(DataFormatError, match=f"train_label_25.pkl: refused to unpickle the global {REFUSED[kind]}"):
        load_fsd10(d / "train_data_25.npy", d / "train_label_25.pkl")


def test_build_dataset_refuses_code_in_pickles(tmp_path, payload):
    kind, obj, marker = payload
    gym = evil_pyskl(tmp_path / "gym.pkl", obj)
    fsd = evil_fsd10(tmp_path / "fsd", obj)
    for cfg in (DataConfig(kind="gym", path=str(gym)), DataConfig(kind="fsd10", path=str(fsd))):
        with pytest.raises(DataFormatError) as e:
            build_dataset(cfg, "train")
        assert "\n" not in str(e.value) and REFUSED[kind] in str(e.value)


def test_train_on_a_crafted_data_pickle_refuses(tmp_path, payload):
    "The same through the command line: `train` on an FSD-10 folder and on a PYSKL file."
    kind, obj, marker = payload
    fsd = evil_fsd10(tmp_path / "fsd", obj)
    rc, _, err = main_in_process("train", "--config", CONFIG, f"out_dir={tmp_path / 'o'}", f"data.path={fsd}", *TINY)
    refused_in_one_line(rc, err, "train_label_25.pkl", REFUSED[kind])
    gym = evil_pyskl(tmp_path / "gym.pkl", obj)
    rc, _, err = main_in_process("train", "--config", "configs/sample_gym_joint.yaml", f"out_dir={tmp_path / 'o'}",
                                 f"data.path={gym}", *TINY)
    refused_in_one_line(rc, err, "gym.pkl", REFUSED[kind])


def test_mdr_gcn_test_refuses_a_crafted_data_pickle(tmp_path, payload, run):
    "A genuine checkpoint pointed (by an override) at a test set whose label pickle carries the payload."
    kind, obj, marker = payload
    fsd = evil_fsd10(tmp_path / "fsd", obj)
    rc, _, err = main_in_process("test", "--checkpoint", run / "best.pt", f"data.path={fsd}", "--no-progress")
    refused_in_one_line(rc, err, "test_label_25.pkl", REFUSED[kind])


# ---------------------------------------------------------------- what must still load
def same(a, b) -> bool:
    "Deep equality of what pickle.load and safe_unpickle return (types included)."
    if type(a) is not type(b): return False
    if isinstance(a, np.ndarray) and a.dtype == object: return a.shape == b.shape and same(a.tolist(), b.tolist())
    if isinstance(a, np.ndarray): return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict): return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


GENERATED = sorted(SAMPLES.glob("**/*.pkl"))


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: str(p.relative_to(SAMPLES)))
def test_generated_pickles_load_as_pickle_loads_them(path):
    assert same(safe_unpickle(path), pickle.loads(path.read_bytes()))


def test_real_pickles_load_as_pickle_loads_them():
    files = sorted(REAL.glob("**/*.pkl"))
    if not files: pytest.skip(f"no real sample pickles at {REAL}")
    for p in files:
        assert same(safe_unpickle(p), pickle.loads(p.read_bytes())), p
        assert load_pyskl(p)["annotations"]


@pytest.mark.parametrize("proto", range(6))
def test_what_the_formats_hold_loads_in_every_protocol(tmp_path, proto):
    obj = {"split": {"train": ["a"]}, "t": (1, 2.5, None, True, "x", b"\x00\xff", bytearray(b"ab"), 1 + 2j),
           "s": {1, 2}, "f": frozenset({3}), "kp": np.arange(12, dtype=np.float16).reshape(1, 2, 3, 2),
           "o": np.array(["x", 1], dtype=object), "n": [np.int64(7), np.float32(0.5), np.dtype("<u4")]}
    (tmp_path / "ok.pkl").write_bytes(pickle.dumps(obj, protocol=proto))
    assert same(safe_unpickle(tmp_path / "ok.pkl"), obj)


def test_only_latin1_bytes_through_codecs(tmp_path):
    "`_codecs.encode` is allowed for the bytes of protocol-2 pickles, with no other codec."
    import codecs
    class Rot13:
        def __reduce__(self): return (codecs.encode, ("abc", "rot13"))
    (tmp_path / "r.pkl").write_bytes(pickle.dumps(Rot13(), protocol=2))
    with pytest.raises(DataFormatError, match="not a readable pickle .*codec 'rot13'"):
        safe_unpickle(tmp_path / "r.pkl")


def test_predict_and_export_refuse_a_crafted_checkpoint(tmp_path, payload, run):
    "`mdr-gcn predict` and `mdr-gcn export` open the checkpoint through the same safe loader."
    kind, obj, marker = payload
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((3, 16, 25, 1), np.float32))
    for name, p in evil_checkpoints(tmp_path, obj, run / "best.pt").items():
        refused_in_one_line(*main_in_process("predict", "--checkpoint", p, clip)[::2], f"{p}: refused to load")
        refused_in_one_line(*main_in_process("export", "--checkpoint", p, "--format", "pt2",
                                             "--out", tmp_path / "m.pt2")[::2], f"{p}: refused to load")
        assert not (tmp_path / "m.pt2").exists()


def test_convert_authors_refuses_a_crafted_checkpoint(tmp_path, payload):
    "A checkpoint said to come from the authors' code is opened with weights_only=True too."
    kind, obj, marker = payload
    for name, p in evil_checkpoints(tmp_path, obj).items():
        rc, _, err = main_in_process("convert-authors", p, "--dataset", "gym", "--out", tmp_path / "c.pt")
        refused_in_one_line(rc, err, str(p))
        assert not (tmp_path / "c.pt").exists()
