"""The NTU RGB+D pipeline (raw .skeleton -> CTR-GCN npz) on generated recordings built to exercise each rule."""
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from mdr_gcn_nb.data.ntu import (NTU60_MISSING, XSUB_TRAIN_SUBJECTS, assign_actors, body_tracks, denoise_tracks,
                                 load_name_list, noisy_frames, ntu_clip, preprocess_ntu, split_indices)
from mdr_gcn_nb.data.readers import (DataFormatError, load_ntu_npz, parse_ntu_name, read_skeleton, skeleton_from_xyz,
                                     write_skeleton)

REAL = Path(os.environ.get("MDR_REAL_SAMPLES", Path(__file__).resolve().parents[1].parent / "shared" / "real_samples")) / "ntu60"


def person(T, x0=0.0, amp=0.05, lying=False, seed=0):
    """(T, 25, 3): 25 joints 0.4 m wide and 1.6 m tall (x-extent < 0.8 * y-extent: never noisy), swaying."""
    rng = np.random.default_rng(seed)
    base = np.stack([np.linspace(-0.2, 0.2, 25), np.linspace(0.8, -0.8, 25), np.full(25, 3.0)], 1)
    if lying:
        base = base[:, [1, 0, 2]]
    sway = amp * np.sin(np.linspace(0, 6, T))[:, None, None] * np.array([1.0, 0.3, 0.2])
    return base[None] + sway + [x0, 0, 0] + rng.normal(0, 1e-3, (T, 25, 3))


def recording(path, bodies, T, empty=(), crlf=False):
    """bodies: (body_id, frames (list of frame indices), xyz (len(frames), 25, 3))."""
    frames = [[] for _ in range(T)]
    for bid, fr, xyz in bodies:
        j = skeleton_from_xyz(xyz)
        for k, t in enumerate(fr):
            frames[t].append((bid, np.zeros(9), j[k]))
    for t in empty:
        frames[t] = []
    return write_skeleton(path, frames, crlf=crlf)


def span(a, n):
    return list(range(a, a + n))


def log_of(path, **kw):
    x, log = ntu_clip(path, return_log=True, **kw)
    return x, dict(log)


# ------------------------------------------------------------------ step 1-2: empty frames, intervals
def test_zero_body_frames_are_dropped_before_intervals(tmp_path):
    p = recording(tmp_path / "S001C001P001R001A001.skeleton", [(1, span(3, 20), person(20))], 30, empty=())
    sk = read_skeleton(p)
    tracks, T = body_tracks(sk)
    assert T == 20 and tracks[0]["interval"].tolist() == list(range(20))
    x = ntu_clip(p)
    assert x.shape == (20, 2, 25, 3)


def test_motion_is_summed_variance_over_frames_and_joints(tmp_path):
    xyz = person(30, amp=0.3)
    p = recording(tmp_path / "S001C001P001R001A001.skeleton", [(1, span(0, 30), xyz), (2, span(0, 30), person(30, 1.0))], 30)
    t = body_tracks(read_skeleton(p))[0][0]
    ref = np.var(xyz.astype(np.float32).reshape(-1, 3), axis=0).sum()
    assert t["motion"] == pytest.approx(float(ref), rel=1e-4)


# ------------------------------------------------------------------ step 4: denoising
@pytest.mark.parametrize("length, dropped", [(11, True), (12, False)])
def test_length_threshold(tmp_path, length, dropped):
    p = recording(tmp_path / "S001C001P001R001A050.skeleton",
                  [(1, span(0, 40), person(40, 0, 0.1)), (2, span(5, length), person(length, 1.0, 0.5))], 40)
    _, log = log_of(p)
    assert log[2].startswith("length") == dropped


@pytest.mark.parametrize("n_noisy, dropped", [(69, False), (70, True)])   # 69.754 % of 100 frames
def test_spread_threshold(tmp_path, n_noisy, dropped):
    xyz = person(100, 1.0, 0.02)
    xyz[:n_noisy] = person(n_noisy, 1.0, 0.02, lying=True)
    assert noisy_frames(xyz).sum() == n_noisy
    p = recording(tmp_path / "S001C001P001R001A050.skeleton", [(1, span(0, 100), person(100, 0, 0.01)), (2, span(0, 100), xyz)], 100)
    _, log = log_of(p)
    assert log[2].startswith("spread") == dropped


def test_spread_never_drops_the_last_body(tmp_path):
    p = recording(tmp_path / "S001C001P001R001A050.skeleton",
                  [(1, span(0, 30), person(30, 0, 0.1, lying=True)), (2, span(0, 30), person(30, 2, 0.1, lying=True))], 30)
    x, log = log_of(p)
    assert log[1].startswith("spread") and log[2] == "actor 1"
    assert np.abs(x[:, 0]).sum() > 0 and not x[:, 1].any()


def test_motion_of_partly_noisy_body_uses_its_clean_frames(tmp_path):
    # body 1 jumps wildly in 30 noisy frames (30 % < 69.754 %: kept) and is still otherwise
    a = person(100, 0.0, 0.0)
    a[:30] = person(30, 0.0, 0.0, lying=True) + np.random.default_rng(1).normal(0, 0.5, (30, 1, 3))
    b = person(100, 1.5, 0.15)                                  # moderate, never noisy
    p = recording(tmp_path / "S001C001P001R001A050.skeleton", [(1, span(0, 100), a), (2, span(0, 100), b)], 100)
    tracks, _ = body_tracks(read_skeleton(p))
    assert tracks[0]["motion"] > tracks[1]["motion"]            # by all frames, body 1 moves most
    ranked, _ = denoise_tracks(tracks)
    assert [t["body_id"] for t in ranked] == [2, 1]             # by its clean frames, it does not


def test_all_bodies_too_short_keeps_the_longest(tmp_path):
    p = recording(tmp_path / "S001C001P001R001A001.skeleton",
                  [(1, span(0, 8), person(8)), (2, span(8, 10), person(10, 0.1))], 18)
    x, log = log_of(p)
    assert log[2] == "actor 1" and x.shape == (10, 2, 25, 3)


# ------------------------------------------------------------------ step 5: actors
def test_actor_one_is_the_body_with_most_motion_and_is_the_origin(tmp_path):
    slow, fast = person(40, 0.0, 0.02), person(40, 1.0, 0.3)
    p = recording(tmp_path / "S001C001P001R001A058.skeleton", [(1, span(0, 40), slow), (2, span(0, 40), fast)], 40)
    x = ntu_clip(p)
    origin = fast[0, 1].astype(np.float32)
    np.testing.assert_allclose(x[:, 0], fast.astype(np.float32) - origin, atol=1e-5)
    np.testing.assert_allclose(x[:, 1], slow.astype(np.float32) - origin, atol=1e-5)
    np.testing.assert_allclose(x[0, 0, 1], 0, atol=1e-7)


def test_assignment_order_and_slots(tmp_path):
    # A 0-29 (most motion), B 30-49 (after A: actor 1), C 0-24 (overlaps A: actor 2), D 20-34 (overlaps both: dropped)
    bodies = [(10, span(0, 30), person(30, 0.0, 0.4)), (11, span(30, 20), person(20, 0.1, 0.3)),
              (12, span(0, 25), person(25, 1.0, 0.2)), (13, span(20, 15), person(15, 2.0, 0.1))]
    p = recording(tmp_path / "S001C001P001R001A051.skeleton", bodies, 50)
    x, log = log_of(p)
    assert log == {10: "actor 1", 11: "actor 1", 12: "actor 2", 13: "dropped: overlaps both actors"}
    assert not x[25:, 1].any() and np.all(np.abs(x[:25, 1]).sum((1, 2)) > 0)


def test_actor_two_interval_starts_at_frame_zero(tmp_path):
    # C (20-39) takes slot 2, whose interval becomes [0, 39]; D (5-19) cannot join it although C starts at 20
    bodies = [(1, span(0, 40), person(40, 0.0, 0.4)), (2, span(20, 20), person(20, 1.0, 0.2)),
              (3, span(5, 15), person(15, 2.0, 0.1))]
    p = recording(tmp_path / "S001C001P001R001A051.skeleton", bodies, 40)
    _, log = log_of(p)
    assert log[2] == "actor 2" and log[3] == "dropped: overlaps both actors"


def test_assign_actors_direct():
    t = lambda bid, s, n, m: dict(body_id=bid, interval=np.arange(s, s + n), joints=np.full((n, 25, 3), bid, np.float32), motion=m)
    out, slots = assign_actors([t(1, 0, 10, 3.0), t(2, 10, 5, 2.0), t(3, 0, 4, 1.0)], 15)
    assert slots == [(1, 0), (2, 0), (3, 1)]       # body 2 (frames 10-14) is disjoint from actor 1 (0-9); body 3 (0-3) is not
    assert out[10, 0, 0, 0] == 2 and out[9, 0, 0, 0] == 1 and out[3, 1, 0, 0] == 3 and out[4, 1].sum() == 0


# ------------------------------------------------------------------ steps 6-7: zero frames, centring
def test_frames_without_any_actor_are_removed_and_absent_actor_stays_zero(tmp_path):
    bodies = [(1, span(0, 20), person(20, 0.0, 0.3)), (2, span(30, 20), person(20, 0.0, 0.2)),
              (3, span(35, 15), person(15, 1.0, 0.05))]
    p = recording(tmp_path / "S001C001P001R001A052.skeleton", bodies, 50)
    x, log = log_of(p)
    assert x.shape == (40, 2, 25, 3)               # frames 20-29 had no actor
    assert not x[:25, 1].any() and np.abs(x[25:, 1]).sum() > 0


def test_centring_uses_first_frame_where_actor_one_is_present(tmp_path):
    # actor 1 (most motion) starts at frame 10; body 2 (frames 0-14) overlaps it and takes slot 2
    a, b = person(30, 0.0, 0.4), person(15, 1.0, 0.01)
    p = recording(tmp_path / "S001C001P001R001A052.skeleton", [(1, span(10, 30), a), (2, span(0, 15), b)], 40)
    x, log = log_of(p)
    assert log == {1: "actor 1", 2: "actor 2"}
    origin = a[0, 1].astype(np.float32)
    assert not x[:10, 0].any()                     # actor 1 absent: zero, not minus the origin
    np.testing.assert_allclose(x[10, 0, 1], 0, atol=1e-6)
    np.testing.assert_allclose(x[:15, 1], b.astype(np.float32) - origin, atol=1e-5)
    assert not x[15:, 1].any()


def test_single_body_zero_frame_compat_switch(tmp_path):
    xyz = person(20, 0.0, 0.2)
    xyz[5] = 0                                     # a frame whose joints are all zero
    p = recording(tmp_path / "S001C001P001R001A001.skeleton", [(1, span(0, 20), xyz)], 20)
    a, b = ntu_clip(p), ntu_clip(p, ctrgcn_compat=False)
    assert a.shape[0] == 20 and b.shape[0] == 19
    np.testing.assert_allclose(a[5, 0], np.broadcast_to(-xyz[0, 1].astype(np.float32), (25, 3)), atol=1e-6)


@pytest.mark.parametrize("ctrgcn_compat", [True, False])
@pytest.mark.parametrize("n_bodies", [1, 2])
def test_all_zero_joints_is_a_one_line_error(tmp_path, ctrgcn_compat, n_bodies):
    bodies = [(b + 1, span(0, 20), np.zeros((20, 25, 3))) for b in range(n_bodies)]
    p = recording(tmp_path / "S001C001P001R001A001.skeleton", bodies, 20)
    with pytest.raises(DataFormatError) as e:
        ntu_clip(p, ctrgcn_compat=ctrgcn_compat)
    assert str(e.value) == f"{p}: no frame where actor 1 has a non-zero joint"


def test_body_that_returns_compat_switch(tmp_path):
    a = person(40, 0.0, 0.3)
    bodies = [(1, span(0, 20) + span(30, 20), a), (2, span(0, 50), person(50, 1.0, 0.05))]
    p = recording(tmp_path / "S001C001P001R001A051.skeleton", bodies, 50)
    c, d = ntu_clip(p), ntu_clip(p, ctrgcn_compat=False)
    o = a[0, 1].astype(np.float32)
    np.testing.assert_allclose(c[20, 0], a[20] - o, atol=1e-5)    # packed: record 20 at frame 20
    np.testing.assert_allclose(d[30, 0], a[20] - o, atol=1e-5)    # true frame 30
    assert not d[20:30, 0].any() and not c[40:, 0].any()


# ------------------------------------------------------------------ the whole conversion
def make_folder(root, crlf_cameras=(2,)):
    """A small NTU-like folder: subjects 1 (train) and 3 (test), cameras 1-3, single and two-person clips."""
    root.mkdir(parents=True, exist_ok=True)
    names = []
    for a in (1, 50):
        for c in (1, 2, 3):
            for s in (3, 1):
                name = f"S001C{c:03d}P{s:03d}R001A{a:03d}"
                T = 30 + 3 * c + s
                bodies = [(1, span(0, T), person(T, 0.0, 0.1 * c, seed=c * 10 + s))]
                if a == 50:
                    bodies.append((2, span(2, T - 2), person(T - 2, 1.0, 0.02, seed=s)))
                recording(root / f"{name}.skeleton", bodies, T + 2, empty=(T, T + 1), crlf=c in crlf_cameras)
                names.append(name)
    return sorted(names)


def test_preprocess_both_benchmarks(tmp_path):
    names = make_folder(tmp_path / "sk")
    r = preprocess_ntu(tmp_path / "sk", tmp_path / "out", benchmark="both")
    meta = [parse_ntu_name(n) for n in names]
    for bench, key, train in (("xsub", "subject", XSUB_TRAIN_SUBJECTS), ("xview", "camera", (2, 3))):
        with np.load(r[bench]) as z:
            assert set(z.files) == {"x_train", "y_train", "x_test", "y_test"}
            assert z["x_train"].shape[1:] == (300, 150) and z["x_train"].dtype == np.float32
            assert z["y_train"].shape[1] == 60 and np.all(z["y_train"].sum(1) == 1)
        tr, te = split_indices(meta, bench)
        assert sorted(tr.tolist() + te.tolist()) == list(range(len(names)))
        assert all(meta[i][key] in train for i in tr) and all(meta[i][key] not in train for i in te)
        x, y = load_ntu_npz(r[bench], "train")
        assert y.tolist() == [meta[i]["label"] for i in tr]
        for k, i in enumerate(tr):                       # each clip is ntu_clip of its file, padded with zeros
            c = ntu_clip(tmp_path / "sk" / f"{names[i]}.skeleton")
            np.testing.assert_array_equal(x[k, :, :len(c)], c.transpose(3, 0, 2, 1))
            assert not x[k, :, len(c):].any()
    assert r["xview_train"] == 8 and r["xview_test"] == 4 and r["xsub_train"] == 6 and r["xsub_test"] == 6
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_xview_order_groups_by_camera():
    meta = [parse_ntu_name(n) for n in ["S001C001P001R001A001", "S001C002P001R001A001", "S001C003P001R001A001",
                                        "S001C002P002R001A001", "S001C003P002R001A001", "S001C001P002R001A001"]]
    tr, te = split_indices(meta, "xview")
    assert tr.tolist() == [1, 3, 2, 4] and te.tolist() == [0, 5]
    tr, te = split_indices(meta, "xsub")
    assert tr.tolist() == [0, 1, 2, 3, 4, 5] and te.tolist() == []


def test_workers_give_identical_files(tmp_path):
    make_folder(tmp_path / "sk")
    a = preprocess_ntu(tmp_path / "sk", tmp_path / "a", benchmark="xsub", workers=1)["xsub"]
    b = preprocess_ntu(tmp_path / "sk", tmp_path / "b", benchmark="xsub", workers=2)["xsub"]
    with np.load(a) as za, np.load(b) as zb:
        for k in za.files:
            np.testing.assert_array_equal(za[k], zb[k])


def test_missing_list_is_skipped(tmp_path):
    names = make_folder(tmp_path / "sk")
    # a listed sample whose file has only empty frames, as the real missing samples do
    write_skeleton(tmp_path / "sk" / "S001C002P005R002A008.skeleton", [[], [], []])
    r = preprocess_ntu(tmp_path / "sk", tmp_path / "out", benchmark="xsub")
    assert r["skipped"] == 1 and r["num_files"] == len(names) + 1
    lst = tmp_path / "skip.txt"
    lst.write_text("# skip these\n" + names[0] + "\nS001C002P005R002A008  # empty\n\n")
    r = preprocess_ntu(tmp_path / "sk", tmp_path / "out2", benchmark="xsub", missing=lst)
    assert r["skipped"] == 2 and r["xsub_train"] + r["xsub_test"] == len(names) - 1
    # ... and then the empty file is an error that names it
    with pytest.raises(DataFormatError, match="S001C002P005R002A008.skeleton: no bodies"):
        preprocess_ntu(tmp_path / "sk", tmp_path / "out3", benchmark="xsub", missing=[])


def test_missing_list_data():
    assert len(NTU60_MISSING) == 302 and len(set(NTU60_MISSING)) == 302
    text = "\n".join(NTU60_MISSING) + "\n"
    assert hashlib.sha256(text.encode()).hexdigest() == "4a964781573e86c3f3bb24d489d2b4768d2d03ede396d20ea9c09ddc92b6df18"
    assert all(parse_ntu_name(n)["setup"] <= 17 for n in NTU60_MISSING)
    for a in range(1, 11):                            # the real sample files are not in it (README)
        assert f"S001C001P001R001A{a:03d}" not in NTU60_MISSING


def test_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no .skeleton files"):
        preprocess_ntu(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(DataFormatError, match="folder not found"):
        preprocess_ntu(tmp_path / "nope", tmp_path / "out")
    make_folder(tmp_path / "sk")
    with pytest.raises(DataFormatError, match=r"A050.skeleton: label out of range"):
        preprocess_ntu(tmp_path / "sk", tmp_path / "out", num_classes=49)
    with pytest.raises(DataFormatError, match=r"frames after cleaning > max_frames=32"):
        preprocess_ntu(tmp_path / "sk", tmp_path / "out", max_frames=32)
    with pytest.raises(ValueError, match="benchmark must be"):
        preprocess_ntu(tmp_path / "sk", tmp_path / "out", benchmark="xset")
    (tmp_path / "sk" / "S1C1.skeleton").write_text("1\n0\n")
    with pytest.raises(DataFormatError, match="S1C1.skeleton: not an NTU sample name"):
        preprocess_ntu(tmp_path / "sk", tmp_path / "out")
    with pytest.raises(DataFormatError, match="not an NTU sample name"):
        load_name_list(["S001", "S001C001P001R001A001"])
    (tmp_path / "sk" / "S1C1.skeleton").unlink()
    recording(tmp_path / "sk" / "S001C001P001R001A000.skeleton", [(1, span(0, 20), person(20))], 20)
    with pytest.raises(DataFormatError, match=r"A000.skeleton: label out of range: action A000"):
        preprocess_ntu(tmp_path / "sk", tmp_path / "out")
    assert not (tmp_path / "out" / "NTU60_CS.npz").exists()


def test_missing_none_skips_nothing(tmp_path):
    make_folder(tmp_path / "sk")
    n = len(list((tmp_path / "sk").glob("*.skeleton")))
    r = preprocess_ntu(tmp_path / "sk", tmp_path / "out", missing=None)
    assert r["skipped"] == 0 and r["xsub_train"] + r["xsub_test"] == n


def test_a_body_twice_in_one_frame_is_a_one_line_error(tmp_path):
    p = recording(tmp_path / "S001C001P001R001A001.skeleton",
                  [(1, span(0, 20), person(20)), (2, span(0, 20), person(20, x0=1.0)), (2, [19], person(1, x0=1.0))], 20)
    for compat in (True, False):
        with pytest.raises(DataFormatError, match=r"A001.skeleton: bodyID 2 appears twice in frame 19"):
            ntu_clip(p, ctrgcn_compat=compat)


@pytest.mark.skipif(not REAL.exists(), reason="real samples not found")
def test_real_files_convert(tmp_path):
    "What 07_data_ntu shows on the ten real files (subject 1, camera 1): X-sub all training, X-view all test."
    r = preprocess_ntu(REAL, tmp_path, benchmark="both")
    assert (r["xsub_train"], r["xsub_test"], r["xview_train"], r["xview_test"]) == (10, 0, 0, 10)
    x, y = load_ntu_npz(r["xview"], "test")
    assert y.tolist() == list(range(10)) and x.shape == (10, 3, 300, 25, 2)
    lengths = (np.abs(x).sum((1, 3, 4)) > 0).sum(1)
    assert lengths.tolist() == [103, 158, 104, 99, 54, 75, 86, 71, 67, 69]
    assert not x[..., 1].any()                        # single-person files: actor 2 empty
    xs, ys = load_ntu_npz(r["xsub"], "train")
    assert ys.tolist() == list(range(10))
    c = ntu_clip(REAL / "S001C001P001R001A004.skeleton")                 # (99, 2, 25, 3)
    assert np.array_equal(xs[3, :, :99], c.transpose(3, 0, 2, 1)) and not xs[3, :, 99:].any()


@pytest.mark.skipif(not REAL.exists(), reason="real samples not found")
def test_real_single_person_clip_is_centred_on_the_first_spine_mid():
    sk = read_skeleton(REAL / "S001C001P001R001A001.skeleton")
    x = ntu_clip(sk)
    assert x.shape == (103, 2, 25, 3) and not x[:, 1].any()
    np.testing.assert_allclose(x[:, 0], (sk["joints"][:, :, :3] - sk["joints"][0, 1, :3]).astype(np.float32), atol=1e-6)
