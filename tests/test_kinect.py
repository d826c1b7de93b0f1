"MSR Action3D and UTKinect-Action3D: the real files read in place (skipped when absent), the facts checked against their .mat files, bad files."
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from mdr_gcn_nb.data import kinect as K
from mdr_gcn_nb.data.datasets import DataConfig, build_dataset
from mdr_gcn_nb.data.readers import DataFormatError
from mdr_gcn_nb.graph import KINECT20, Graph

ROOT = Path(__file__).resolve().parents[1]
REAL = Path(os.environ.get("MDR_REAL_SAMPLES", ROOT.parent / "shared" / "real_samples"))
MSR, UTK = REAL / "msr_action3d", REAL / "utkinect"
need_msr = pytest.mark.skipif(not (MSR / K.MSR3D_LIST).is_file(), reason=f"no real MSR Action3D files in {MSR} (set MDR_REAL_SAMPLES)")
need_utk = pytest.mark.skipif(not (UTK / "actionLabel.txt").is_file(), reason=f"no real UTKinect files in {UTK} (set MDR_REAL_SAMPLES)")


def _loadmat(path):
    sio = pytest.importorskip("scipy.io", reason="scipy reads the datasets' .mat files (dev extra)")
    return sio.loadmat(str(path))


# --- MSR Action3D -------------------------------------------------------------------------------

@need_msr
def test_msr_every_listed_file_reads():
    names = K.msr3d_names(MSR)
    assert len(names) == len(set(names)) == 557
    lengths = []
    for n in names:
        x = K.read_msr3d(MSR / f"{n}_skeleton3D.txt")
        assert x.dtype == np.float32 and x.shape[1:] == (20, 3) and np.isfinite(x).all(), n
        assert x.any(), n
        lengths.append(len(x))
        # independent count: 20 lines a frame
        assert len((MSR / f"{n}_skeleton3D.txt").read_text().split("\n")) // 20 == len(x), n
    assert min(lengths) >= 13


@need_msr
def test_msr_all_zero_file_is_reported():
    f = MSR / "a13_s09_e02_skeleton3D.txt"
    with pytest.raises(DataFormatError) as e: K.read_msr3d(f)
    msg = str(e.value)
    assert "\n" not in msg and "a13_s09_e02_skeleton3D.txt" in msg and "every coordinate is 0" in msg
    assert "a13_s09_e02" not in K.msr3d_names(MSR)                       # not in the standard list
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        every = K.msr3d_names(MSR, list_file=None)
    assert len(every) == 566 and "a13_s09_e02" not in every
    assert any("skipping a13_s09_e02" in str(m.message) for m in w)


@need_msr
def test_msr_joint_order_is_anatomical():
    "After the mapping, head above shoulders above hips above feet, and each side's joints on one side."
    xs = np.concatenate([K.read_msr3d(MSR / f"{n}_skeleton3D.txt") for n in K.msr3d_names(MSR)[::10]])
    m = xs.mean(0)                                                          # (20, 3)
    j = {n: i for i, n in enumerate(KINECT20.joint_names)}
    assert m[j["Head"], 1] > m[j["ShoulderCenter"], 1] > m[j["Spine"], 1] > m[j["HipCenter"], 1] > m[j["KneeLeft"], 1] > m[j["FootLeft"], 1]
    left = [j[n] for n in KINECT20.joint_names if n.endswith("Left")]
    right = [j[n] for n in KINECT20.joint_names if n.endswith("Right")]
    assert (m[left, 0] < m[right, 0]).all()                                 # left joints at smaller x, as in UTKinect


@need_msr
@pytest.mark.parametrize("subset", [None, "AS1", "AS2", "AS3"])
def test_msr_cross_subject_split_sizes(subset):
    names = (MSR / K.MSR3D_LIST).read_text().split()
    actions = set(range(1, 21)) if subset is None else set(K.MSR3D_ACTION_SETS[subset])
    expect = {s: sum(1 for n in names if int(n[1:3]) in actions and int(n[5:7]) in subs)
              for s, subs in (("train", {1, 3, 5, 7, 9}), ("test", {2, 4, 6, 8, 10}))}
    got = {}
    for split in ("train", "test"):
        ds = build_dataset(DataConfig(kind="msr3d", path=str(MSR), subset=subset), split)
        got[split] = len(ds)
        assert ds.num_classes == len(actions) and set(ds.labels.tolist()) == set(range(len(actions)))
        x, y, i = ds[0]
        assert tuple(x.shape) == (3, 32, 20, 1)
    assert got == expect
    if subset is None: assert got == {"train": 284, "test": 273}


@need_msr
def test_msr_mat_facts():
    bm = _loadmat(MSR / "body_model.mat")["body_model"][0, 0]
    bones = [tuple(int(v) for v in b) for b in bm["bones"]]
    assert bones == list(K.MSR_BODY_MODEL_BONES)
    assert int(bm["n_joints"][0, 0]) == 20
    for field, name in (("hip_center_index", "HipCenter"), ("left_hip_index", "HipLeft"), ("right_hip_index", "HipRight"),
                        ("head_index", "Head"), ("left_wrist_index", "WristLeft"), ("right_wrist_index", "WristRight"),
                        ("left_ankle_index", "AnkleLeft"), ("right_ankle_index", "AnkleRight")):
        assert K.MSR_JOINTS[int(bm[field][0, 0]) - 1] == name, field
    mapped = {frozenset((K.MSR_TO_KINECT20[a - 1], K.MSR_TO_KINECT20[b - 1])) for a, b in bones}
    assert mapped == {frozenset(e) for e in KINECT20.edges}
    sp = _loadmat(MSR / "tr_te_splits.mat")
    sets = [tuple(int(v) for v in s.ravel()) for s in sp["action_sets"].ravel()]
    assert sets == [K.MSR3D_ACTION_SETS[k] for k in ("AS1", "AS2", "AS3")]
    names = [str(n.ravel()[0]) for n in _loadmat(MSR / "action_names.mat")["action_names"].ravel()]
    assert tuple(names) == K.MSR3D_ACTIONS
    used = [str(n.ravel()[0]).strip() for n in _loadmat(MSR / "files_used.mat")["files_used"].ravel()]
    assert used == K.msr3d_names(MSR)


# --- UTKinect-Action3D --------------------------------------------------------------------------

@need_utk
def test_utk_segments_and_frame_number_cutting():
    segs = K.utkinect_segments(UTK)
    assert len(segs) == 199
    assert [s["name"] for s in segs if s["recording"] == "s10_e02" and s["action"] == "carry"] == []
    by = {s["name"]: s for s in segs}
    # hand-picked: (segment, lines kept, first line number of the segment in the file)
    for name, n_lines, first_line in (("s01_e01_walk", 46, 25), ("s09_e01_sitDown", 33, 255)):
        s = by[name]
        rec = UTK / f"joints_{s['recording']}.txt"
        frames, joints = K.read_utkinect(rec)
        seg = K.cut_by_frame(frames, joints, s["start"], s["end"])
        lines = [l.split() for l in rec.read_text().splitlines() if l.strip()]
        kept = [i for i, f in enumerate(lines) if s["start"] <= int(f[0]) <= s["end"]]    # independent parse
        assert len(seg) == len(kept) == n_lines and kept[0] + 1 == first_line, name
        np.testing.assert_allclose(seg[0].ravel(), np.array(lines[kept[0]][1:], float), rtol=0, atol=1e-6)
        assert first_line != s["start"]                                      # line numbers would cut elsewhere


@need_utk
def test_utk_every_segment_is_non_empty_and_order_is_anatomical():
    recs = {r: K.read_utkinect(UTK / f"joints_{r}.txt") for r in {s["recording"] for s in K.utkinect_segments(UTK)}}
    for s in K.utkinect_segments(UTK):
        assert len(K.cut_by_frame(*recs[s["recording"]], s["start"], s["end"])) >= 5, s["name"]
    m = np.concatenate([j for _, j in recs.values()]).mean(0)             # (20, 3), the file's order = kinect20
    j = {n: i for i, n in enumerate(KINECT20.joint_names)}
    assert m[j["Head"], 1] > m[j["ShoulderCenter"], 1] > m[j["HipCenter"], 1] > m[j["FootRight"], 1]
    assert (m[[j["ShoulderLeft"], j["HipLeft"], j["HandLeft"]], 0] < m[[j["ShoulderRight"], j["HipRight"], j["HandRight"]], 0]).all()


@need_utk
@pytest.mark.parametrize("k", range(10))
def test_utk_subject_splits(k):
    tr, te = (build_dataset(DataConfig(kind="utkinect", path=str(UTK), split_index=k), s) for s in ("train", "test"))
    assert len(tr) + len(te) == 199
    subj = lambda ds: {int(n[1:3]) for n in ds.sample_names}
    assert subj(tr) == set(K.UTK_TRAIN_SUBJECTS[k]) and subj(te) == set(range(1, 11)) - set(K.UTK_TRAIN_SUBJECTS[k])
    x, y, i = tr[0]
    assert tuple(x.shape) == (3, 32, 20, 1) and tr.num_classes == 10


@need_utk
def test_utk_mat_facts():
    sp = _loadmat(UTK / "tr_te_splits.mat")
    tr = [tuple(int(v) for v in r) for r in sp["tr_subjects"]]
    te = [tuple(int(v) for v in r) for r in sp["te_subjects"]]
    assert tr == list(K.UTK_TRAIN_SUBJECTS)
    for a, b in zip(tr, te): assert sorted(a + b) == list(range(1, 11))
    names = [str(n.ravel()[0]) for n in _loadmat(UTK / "action_names.mat")["action_names"].ravel()]
    assert [n.replace("_", "").lower() for n in names] == [a.lower() for a in K.UTK_ACTIONS]
    bm = _loadmat(UTK / "body_model.mat")["body_model"][0, 0]
    assert [tuple(int(v) for v in b) for b in bm["bones"]] == list(K.MSR_BODY_MODEL_BONES)   # same skeleton, MSR-numbered


# --- the layout and bad files (no real data needed) ----------------------------------------------

def test_kinect20_graph():
    g = Graph("kinect20")
    assert g.A.shape == (3, 20, 20) and KINECT20.joint_names[KINECT20.center] == "ShoulderCenter"
    assert sorted(K.MSR_TO_KINECT20) == list(range(20))


def _one_line_error(fn, path, *needles):
    with pytest.raises(DataFormatError) as e: fn(path)
    msg = str(e.value)
    assert "\n" not in msg and str(path) in msg, msg
    for n in needles: assert n in msg, msg


@pytest.mark.parametrize("text, needles", [
    ("", ["empty file"]),
    ("0 0 0 1\n1 2 3\n", ["line 2", "3 fields, expected 4"]),
    ("0 0 0 1\n" * 21, ["21 joint lines is not a multiple of 20"]),
    ("0 0 abc 1\n", ["line 1", "non-numeric"]),
    ("0 0 inf 1\n", ["line 1", "NaN or infinite"]),
    ("0 0 0 1\n" * 40, ["every coordinate is 0"]),
])
def test_msr_bad_files(tmp_path, text, needles):
    f = tmp_path / "a01_s01_e01_skeleton3D.txt"; f.write_text(text)
    _one_line_error(K.read_msr3d, f, *needles)


@pytest.mark.parametrize("text, needles", [
    ("5 " + "0 " * 59 + "\n", ["line 1", "60 fields, expected 61"]),
    ("x " + "0 " * 60 + "\n", ["line 1", "is not a non-negative integer"]),
    ("9 " + "0 " * 60 + "\n4 " + "0 " * 60 + "\n", ["line 2", "frame number 4 is smaller than the previous line's 9"]),
    ("9 " + "0 " * 59 + "nan\n", ["line 1", "NaN or infinite"]),
])
def test_utk_bad_joint_files(tmp_path, text, needles):
    f = tmp_path / "joints_s01_e01.txt"; f.write_text(text)
    _one_line_error(K.read_utkinect, f, *needles)


@pytest.mark.parametrize("text, needles", [
    ("walk: 1 2\n", ["line 1", "before any recording name"]),
    ("s01_e01\njump: 1 2\n", ["line 2", "expected 'action: first last'"]),
    ("s01_e01\nwalk: 9 2\n", ["line 2", "not two integers first <= last"]),
])
def test_utk_bad_label_files(tmp_path, text, needles):
    f = tmp_path / "actionLabel.txt"; f.write_text(text)
    _one_line_error(K.read_utkinect_labels, f, *needles)


def test_round_trip_and_empty_segment(tmp_path):
    x = np.random.default_rng(0).normal(size=(7, 20, 3)).astype(np.float32)
    K.write_msr3d(tmp_path / "a01_s01_e01_skeleton3D.txt", x)
    np.testing.assert_allclose(K.read_msr3d(tmp_path / "a01_s01_e01_skeleton3D.txt"), x, atol=1e-5)
    raw = K.read_msr3d(tmp_path / "a01_s01_e01_skeleton3D.txt", order="msr")
    np.testing.assert_allclose(raw[:, 19], x[:, 3], atol=1e-5)               # MSR joint 20 is the head (kinect20 3)
    frames = np.array([10, 12, 12, 15])
    K.write_utkinect(tmp_path / "joints_s01_e01.txt", frames, x[:4])
    fr, j = K.read_utkinect(tmp_path / "joints_s01_e01.txt")
    assert fr.tolist() == frames.tolist() and len(K.cut_by_frame(fr, j, 12, 14)) == 2
    assert len(K.cut_by_frame(fr, j, 13, 14)) == 0
