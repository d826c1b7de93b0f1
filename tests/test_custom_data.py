"""Your own skeletons: layout YAML files, PYSKL pickles of any layout (kind 'pyskl'), make-dataset from .npy + CSV and
from OpenPose JSON, one-line errors for bad input, and a training run on the real MSR Action3D files."""
import contextlib
import io
import json
import os
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mdr_gcn_nb.cli import main
from mdr_gcn_nb.data.datasets import DataConfig, build_dataset, make_dataset
from mdr_gcn_nb.data.readers import DataFormatError
from mdr_gcn_nb.graph import Graph, get_layout
from mdr_gcn_nb.model import build_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples"
REAL = Path(os.environ.get("MDR_REAL_SAMPLES", ROOT.parent / "shared" / "real_samples"))
MSR = REAL / "msr_action3d"
MSR_LAYOUT = ROOT / "tests" / "layouts" / "msr20.yaml"
STICK = "joints: [head, neck, hip, lhand, rhand]\nedges: [[head, neck], [neck, hip], [neck, lhand], [neck, rhand]]\ncenter: neck\n"


def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()


def _pickle(d: Path, annos, split, **extra) -> str:
    with open(d / "own.pkl", "wb") as f: pickle.dump({"split": split, "annotations": annos, **extra}, f)
    return str(d / "own.pkl")


def _annos(n=4, V=5, C=3, M=1, T=12, K=2, seed=0):
    rng = np.random.default_rng(seed)
    return [dict(frame_dir=f"clip{i}", label=i % K, total_frames=T, keypoint=rng.normal(size=(M, T, V, C)).astype(np.float32))
            for i in range(n)]


SPLIT = {"train": ["clip0", "clip1"], "test": ["clip2", "clip3"]}


@pytest.fixture
def stick(tmp_path):
    p = tmp_path / "stick.yaml"; p.write_text(STICK); return str(p)


# ---- the layout file flows through data, graph and model
def test_yaml_layout_trains_through_data_and_model(tmp_path, stick):
    ds = build_dataset(DataConfig(kind="pyskl", path=_pickle(tmp_path, _annos(), SPLIT), layout=stick, window=8), "train")
    x, y, _ = ds[0]
    assert tuple(x.shape) == (3, 8, 5, 1) and ds.num_classes == 2 and ds.cfg.coords == 3
    m = build_model("mdrgcn", layout=stick, num_classes=2, num_persons=1, channels=(8, 8), strides=(1, 1))
    f, logits = m(x[None])
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    np.testing.assert_array_equal(m.graph.A, Graph.from_edges(5, get_layout(stick).edges, center=1).A)


def test_two_d_pickle_with_scores_and_two_persons(tmp_path):
    annos = _annos(V=17, C=2, M=2)
    for a in annos: a["keypoint_score"] = np.full(a["keypoint"].shape[:3], 0.5, np.float32)
    ds = build_dataset(DataConfig(kind="pyskl", path=_pickle(tmp_path, annos, SPLIT), layout="coco17", window=8), "test")
    x = ds.raw(0)
    assert x.shape == (3, 12, 17, 2) and np.all(x[2] == 0.5) and ds.cfg.coords == 2 and ds.cfg.num_persons == 2
    np.testing.assert_allclose(x[:2, 3, 4, 1], annos[2]["keypoint"][1, 3, 4])       # not normalised: no img_shape


def test_gym_kind_is_the_pyskl_kind_with_finegym_defaults():
    p, lm = SAMPLES / "gym" / "gym_synth.pkl", SAMPLES / "gym" / "gym_synth_label_map.txt"
    g = build_dataset(DataConfig(kind="gym", path=str(p), label_map=str(lm)), "train")
    q = build_dataset(DataConfig(kind="pyskl", path=str(p), label_map=str(lm), layout="coco17", num_persons=1,
                                 normalize_2d=True), "train")                       # FineGym: one person (facts.DATASETS)
    assert len(g) == len(q) and g.class_names == q.class_names
    for i in (0, 5, len(g) - 1): torch.testing.assert_close(g[i][0], q[i][0])


# ---- bad input: one line naming the file, the clip and the problem
BAD = {  # case: (annotations, split, config changes, the clip named, the problem)
    "V not the layout's": (lambda: _annos(V=6), SPLIT, {}, "clip0", "keypoint has V=6 joints, but the layout stick has V=5"),
    "label out of range": (lambda: _annos(K=3), SPLIT, {"num_classes": 2}, "clip2", "label out of range: 2 (expected 0..1)"),
    "split names no annotation": (lambda: _annos(), {"train": ["clip0", "clip7"], "test": ["clip2"]}, {}, "clip7",
                                  "split 'train' names clip 'clip7', which no annotation has"),
    "NaN keypoint": (lambda: [dict(a, keypoint=np.where(np.arange(5)[:, None] == 2, np.nan, a["keypoint"]).astype(np.float32))
                              if a["frame_dir"] == "clip1" else a for a in _annos()], SPLIT, {}, "clip1",
                     "NaN or infinite keypoint at person 0, frame 0, joint 2"),
    "empty split": (lambda: _annos(), {"train": ["clip0"], "test": []}, {}, "'test'", "split 'test' is empty"),
    "2-D and 3-D mixed": (lambda: _annos()[:3] + _annos(C=2)[3:], SPLIT, {}, "clip3", "keypoint has C=2 coordinates per joint, but clip clip0 has C=3"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_pickle_is_one_line_naming_file_clip_and_problem(tmp_path, stick, case):
    annos, split, change, clip, problem = BAD[case]
    path = _pickle(tmp_path, annos(), split)
    with pytest.raises(DataFormatError) as e:
        build_dataset(DataConfig(kind="pyskl", path=path, layout=stick, **change), "train")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(path + ": ") and clip in msg and problem in msg, msg


def test_bad_layout_file_and_missing_layout(tmp_path):
    path = _pickle(tmp_path, _annos(), SPLIT)
    (tmp_path / "bad.yaml").write_text(STICK.replace("center: neck", "center: knee"))
    with pytest.raises(ValueError, match=r"bad.yaml: center: 'knee' is not one of the 5 joints"):
        build_dataset(DataConfig(kind="pyskl", path=path, layout=str(tmp_path / "bad.yaml")), "train")
    with pytest.raises(ValueError, match="data.layout: the pyskl kind needs the layout"):
        build_dataset(DataConfig(kind="pyskl", path=path), "train")


# ---- make-dataset
def test_make_dataset_from_npy_and_csv(tmp_path, stick):
    rng = np.random.default_rng(1)
    (tmp_path / "clips").mkdir()
    clips = {f"c{i}": rng.normal(size=(10 + i, 5, 3)) if i % 2 else rng.normal(size=(2, 9, 5, 3)) for i in range(6)}
    for k, v in clips.items(): np.save(tmp_path / "clips" / f"{k}.npy", v)
    (tmp_path / "l.csv").write_text("name,label,split\n" + "".join(f"c{i},{['walk', 'run', 'jump'][i % 3]},{'train' if i < 4 else 'val'}\n" for i in range(6)))
    rc, out, err = cli("make-dataset", tmp_path / "clips", "--csv", tmp_path / "l.csv", "--layout", stick, "--out", tmp_path / "d.pkl")
    assert rc == 0 and "6 clips (train 4, val 2), 3 classes, V=5 joints, C=3, up to M=2 persons" in out, err
    ds = build_dataset(DataConfig(kind="pyskl", path=str(tmp_path / "d.pkl"), layout=stick, window=8), "test")   # test reads 'val'
    assert ds.sample_names == ["c4", "c5"] and ds.class_names == ["jump", "run", "walk"] and ds.labels.tolist() == [1, 0]
    np.testing.assert_allclose(ds.raw(1)[:, :, :, 0].transpose(1, 2, 0), clips["c5"].astype(np.float32))   # (T, V, C) kept
    assert ds.raw(0).shape == (3, 9, 5, 2)
    rc, _, err = cli("make-dataset", tmp_path / "clips", "--csv", tmp_path / "l.csv", "--layout", stick, "--out", tmp_path / "d.pkl")
    assert rc == 2 and "exists; pass --force" in err


@pytest.mark.parametrize("bad, culprit, problem", [
    ("nan", "c1.npy", "c1: NaN or infinite keypoint at person 0, frame 2, joint 3"),
    ("joints", "c1.npy", "c1: keypoint has V=4 joints, but the layout stick has V=5"),
    ("label", "l.csv", "line 3: clip c1: label out of range: 7 (expected 0..1)"),
    ("rank", "c1.npy", "clip c1: expected a numeric array (T, V, C) or (M, T, V, C) with C = 2 or 3"),
])
def test_make_dataset_bad_input_is_one_line(tmp_path, stick, bad, culprit, problem):
    (tmp_path / "clips").mkdir()
    x = np.zeros((6, 5, 3)); np.save(tmp_path / "clips" / "c0.npy", x)
    nan = x.copy(); nan[2, 3] = np.nan                                          # frame 2, joint 3
    y = {"nan": nan,
         "joints": x[:, :4], "label": x, "rank": x[0]}[bad]
    np.save(tmp_path / "clips" / "c1.npy", y)
    names = tmp_path / "names.txt"; names.write_text("a\nb\n")
    (tmp_path / "l.csv").write_text(f"name,label,split\nc0,0,train\nc1,{7 if bad == 'label' else 1},test\n")
    rc, out, err = cli("make-dataset", tmp_path / "clips", "--csv", tmp_path / "l.csv", "--layout", stick,
                       "--out", tmp_path / "d.pkl", "--class-names", names)
    line = err.strip()
    assert rc == 2 and "\n" not in line and f"{culprit}: " in line and problem in line, err
    assert not (tmp_path / "d.pkl").exists()


def test_make_dataset_from_openpose_json(tmp_path):
    rng = np.random.default_rng(2)
    (tmp_path / "clips").mkdir()
    rows, kps = ["name,label,split"], {}
    for i in range(4):
        d = tmp_path / "clips" / f"video{i}"; d.mkdir()
        kps[i] = rng.uniform(0, 500, size=(7, 25, 3))                         # (T, 25, x y c)
        for t in range(7):
            (d / f"video{i}_{t:012d}_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": kps[i][t].ravel().tolist()}]}))
        rows.append(f"video{i},{i % 2},{'train' if i < 2 else 'test'}")
    (tmp_path / "l.csv").write_text("\n".join(rows) + "\n")
    info = make_dataset(tmp_path / "clips", tmp_path / "l.csv", tmp_path / "op.pkl", "openpose25")
    assert info["clips"] == {"train": 2, "test": 2} and (info["V"], info["C"], info["M"]) == (25, 2, 1)
    ds = build_dataset(DataConfig(kind="pyskl", path=str(tmp_path / "op.pkl"), layout="openpose25", window=8), "test")
    np.testing.assert_allclose(ds.raw(1)[:, :, :, 0].transpose(1, 2, 0), kps[3].astype(np.float32), rtol=1e-6)   # x, y, score
    (tmp_path / "l.csv").write_text("name,label,split\nvideo0,0,train\nvideo1,1,test\n")
    with pytest.raises(DataFormatError, match=r"video0: keypoint has V=25 joints, but the layout coco17 has V=17"):
        make_dataset(tmp_path / "clips", tmp_path / "l.csv", tmp_path / "op2.pkl", "coco17")


# ---- the real MSR Action3D files, through make-dataset, a layout YAML and the training loop
def test_msr_layout_yaml_matches_body_model_mat():
    lay = get_layout(str(MSR_LAYOUT))
    edges = {frozenset((i + 1, j + 1)) for i, j in lay.edges}                 # 1-based, as body_model.mat
    stated = {frozenset(e) for e in [(7, 4), (4, 3), (3, 20), (3, 1), (3, 2), (1, 8), (2, 9), (8, 10), (9, 11), (10, 12),
                                     (11, 13), (7, 5), (7, 6), (5, 14), (6, 15), (14, 16), (15, 17), (16, 18), (17, 19)]}
    assert lay.num_joints == 20 and edges == stated
    if not (MSR / "body_model.mat").exists(): pytest.skip(f"{MSR} not present: the bones are checked against the list above only")
    sio = pytest.importorskip("scipy.io")
    bm = sio.loadmat(MSR / "body_model.mat")["body_model"][0, 0]
    assert {frozenset(map(int, b)) for b in bm["bones"]} == edges
    names = {"hip_center_index": "hip_center", "head_index": "head", "left_hip_index": "left_hip", "right_wrist_index": "right_wrist",
             "left_ankle_index": "left_ankle"}
    for k, n in names.items(): assert lay.joint_names[int(bm[k][0, 0]) - 1] == n, k


@pytest.mark.skipif(not MSR.exists(), reason=f"{MSR} not present (real MSR Action3D files)")
def test_msr_action3d_trains_through_the_custom_path(tmp_path):
    "Cross-subject (train 1, 3, 5, 7, 9 / test 2, 4, 6, 8, 10) on the 557 sequences of the standard protocol: top-1 > 3x chance."
    from mdr_gcn_nb.config import config_from_dict
    from mdr_gcn_nb.train import train
    t0 = time.time()
    (tmp_path / "clips").mkdir()
    rows = ["name,label,split"]
    for name in (MSR / "files_used_in_cvpr12_paper.txt").read_text().split():
        x = np.loadtxt(MSR / f"{name}_skeleton3D.txt", dtype=np.float32).reshape(-1, 20, 4)[..., :3]   # x y z (metres), confidence dropped
        np.save(tmp_path / "clips" / f"{name}.npy", x)
        rows.append(f"{name},{int(name[1:3]) - 1},{'train' if int(name[5:7]) % 2 else 'test'}")
    (tmp_path / "msr.csv").write_text("\n".join(rows) + "\n")
    rc, out, err = cli("make-dataset", tmp_path / "clips", "--csv", tmp_path / "msr.csv", "--layout", MSR_LAYOUT, "--out", tmp_path / "msr.pkl")
    assert rc == 0 and "557 clips (train 284, test 273), 20 classes, V=20 joints, C=3" in out, err
    cfg = config_from_dict(dict(
        name="msr", out_dir=str(tmp_path / "runs"), seed=0, threads=1, progress=False, device="cpu",
        data=dict(kind="pyskl", path=str(tmp_path / "msr.pkl"), layout=str(MSR_LAYOUT), window=32, center_joint=6, random_rot=True),
        model=dict(name="mdrgcn", args=dict(channels=(32, 32, 64, 64), strides=(1, 2, 1, 2))), loss=dict(name="softmax"),
        optim=dict(epochs=6, batch_size=16, lr=0.05, weight_decay=5e-4, warmup_epochs=1, milestones=[5])))
    s = train(cfg, log=lambda *a: None)
    print(f"MSR Action3D cross-subject: best top-1 {s['best_top1']:.1f}% (chance {s['chance']:.1f}%) at epoch {s['best_epoch']}, "
          f"{time.time() - t0:.0f} s in all")
    assert s["best_top1"] > 3 * s["chance"], s
