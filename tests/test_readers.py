"""Readers on the real sample files (read in place from $MDR_REAL_SAMPLES, default ../shared/real_samples) and on bad input."""
import json
import os
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from mdr_gcn_nb.data import readers as R
from mdr_gcn_nb.data import skeleton_parser as SP
from mdr_gcn_nb.data.readers import (DataFormatError, FSD10_CLASSES, atomic_write, load_fsd10, load_label_map, load_ntu_npz,
                                     load_pyskl, parse_ntu_name, pyskl_clip, read_openpose_dir,
                                     read_skeleton, skeleton_from_xyz, write_skeleton)

REAL = Path(os.environ.get("MDR_REAL_SAMPLES", Path(__file__).resolve().parents[1].parent / "shared" / "real_samples"))
NTU = REAL / "ntu60"
FRAMES = {1: 103, 2: 158, 3: 104, 4: 99, 5: 54, 6: 75, 7: 86, 8: 71, 9: 67, 10: 69}
FILES = {a: NTU / f"S001C001P001R001A{a:03d}.skeleton" for a in FRAMES}

pytestmark = pytest.mark.skipif(not REAL.exists(), reason=f"real samples not found at {REAL}")


def one_line(e):
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


# ---------------------------------------------------------------- NTU .skeleton, real files
@pytest.mark.parametrize("action", sorted(FRAMES))
def test_real_skeleton_shapes_and_frames(action):
    sk = read_skeleton(FILES[action])
    T = FRAMES[action]
    assert sk["num_frames"] == T
    assert sk["body_count"].tolist() == [1] * T          # single-body files, no empty frames (README)
    assert sk["joints"].shape == (T, 25, 12) and sk["info"].shape == (T, 9)
    assert len(sk["bodies"]) == 1 and sk["bodies"][0]["joints"].shape == (T, 25, 12)
    assert set(np.unique(sk["joints"][:, :, 11])) <= {1.0, 2.0}   # trackingState
    assert parse_ntu_name(FILES[action])["label"] == action - 1
    assert sk["crlf"] == (action >= 6)                    # A006-A010 have CRLF line ends


@pytest.mark.parametrize("action", [1, 5, 10])
def test_real_skeleton_spot_values_from_text(action):
    """Values read independently from the file text, at a frame in the middle and the last joint line."""
    lines = FILES[action].read_text().splitlines()
    T = FRAMES[action]
    t = T // 2
    # layout: line 0 = T; per frame 1 + 1 + 1 + 25 lines
    base = 1 + t * 28
    info = lines[base + 1].split()
    joint7 = [float(v) for v in lines[base + 3 + 7].split()]
    last = [float(v) for v in lines[-1].split()]
    sk = read_skeleton(FILES[action])
    assert int(sk["body_id"][t]) == int(info[0])
    assert sk["info"][t].tolist() == [float(v) for v in info[1:]]
    assert sk["joints"][t, 7].tolist() == joint7
    assert sk["joints"][-1, 24].tolist() == last


def test_real_skeleton_first_frame_values():
    "The values 06_data_readers shows for A001's first frame."
    sk = read_skeleton(FILES[1])
    assert sk["joints"][0, 0, :3].tolist() == [0.2181153, 0.1725972, 3.785547]
    assert sk["info"][0].tolist() == [0, 1, 1, 1, 1, 0, 0.02764709, 0.05745083, 2]


def test_real_skeleton_body_id_is_exact():
    sk = read_skeleton(FILES[1])
    first_info = FILES[1].read_text().splitlines()[2].split()
    assert int(sk["body_id"][0]) == int(first_info[0]) == 72057594037931101
    assert sk["bodies"][0]["body_id"] == 72057594037931101


@pytest.mark.parametrize("action", sorted(FRAMES))
def test_write_skeleton_reproduces_real_files_byte_for_byte(action, tmp_path):
    sk = read_skeleton(FILES[action])
    out = write_skeleton(tmp_path / FILES[action].name, sk)
    assert out.read_bytes() == FILES[action].read_bytes()


def test_crlf_reads_like_lf(tmp_path):
    p = tmp_path / "S001C001P001R001A003.skeleton"
    p.write_bytes(FILES[3].read_bytes().replace(b"\n", b"\r\n"))
    a, b = read_skeleton(FILES[3]), read_skeleton(p)
    for k in ("body_count", "body_id", "info", "joints", "frame"):
        np.testing.assert_array_equal(a[k], b[k])
    assert write_skeleton(tmp_path / "w.skeleton", a, crlf=True).read_bytes() == p.read_bytes()


def _fast(buf: bytes):
    return SP._skeleton_kernel(np.frombuffer(buf + b"\0", np.uint8), SP._P10)


def _bits(x):
    return x.dtype, x.shape, x.tobytes()


@pytest.mark.parametrize("action", sorted(FRAMES))
def test_fast_and_careful_readers_agree_bit_for_bit_on_real_files(action):
    buf = FILES[action].read_bytes()
    status, *fast = _fast(buf)
    assert status == 0                                   # real files never need the careful reader
    careful = R._read_lines(FILES[action], buf.decode())
    for f, c in zip(fast, careful):
        assert _bits(f) == _bits(c)
    ref = np.array([float(t) for t in buf.split()])      # every joint field is float()'s double
    assert np.isin(fast[3].ravel(), ref).all() and np.array_equal(fast[3].ravel()[:300], ref[13:313])


def _with_joint_tokens(tmp_path, toks, name="odd.skeleton"):
    """A real file whose first 12 joint fields of frame 0 are replaced by `toks`."""
    g = _lines(5)
    g[4] = " ".join(toks) + "\n"
    return _write(tmp_path, g, name)


@pytest.mark.parametrize("toks", [
    ["9007199254740993", "72057594037931101", "0.12345678901234567", "1.401298E-45", "1e23", "-1e-23",
     "00000000000000000000001.5", "1.5e+0300", "7", "8", "9", "10"],     # beyond the fast path: float() decides
    ["1", "-0", ".5", "5.", "+2", "1e22", "1e-22", "9007199254740991", "8.157031E-05", "-0.2059419", "123456.7", "2"],
])
def test_any_number_float_accepts_is_read_as_float_reads_it(tmp_path, toks):
    p = _with_joint_tokens(tmp_path, toks)
    sk = read_skeleton(p)
    got = sk["joints"][0, 0]
    assert got.tobytes() == np.array([float(t) for t in toks]).tobytes()
    # the first set is only readable by the careful reader, the second stays on the fast path
    assert _fast(p.read_bytes())[0] == (1 if "1e23" in toks else 0)
    ref = read_skeleton(FILES[5])
    np.testing.assert_array_equal(sk["joints"][1:], ref["joints"][1:])


@pytest.mark.parametrize("edit", ["indented", "blank_lines", "tabs", "crlf", "no_final_newline", "trailing_spaces"])
def test_harmless_layout_variations_read_the_same(tmp_path, edit):
    text = FILES[5].read_text()
    text = {"indented": text.replace("\n", "\n  "), "blank_lines": text.replace("\n25\n", "\n\n25\n\n"),
            "tabs": text.replace(" ", "\t"), "crlf": text.replace("\n", "\r\n"), "no_final_newline": text.rstrip("\n"),
            "trailing_spaces": text.replace("\n", "  \n")}[edit]
    p = tmp_path / "S001C001P001R001A005.skeleton"
    p.write_bytes(text.encode())
    assert _fast(p.read_bytes())[0] == 0
    a, b = read_skeleton(FILES[5]), read_skeleton(p)
    for k in ("body_count", "body_id", "info", "joints", "frame"):
        assert _bits(a[k]) == _bits(b[k])


@pytest.mark.parametrize("edit, pattern", [
    ("field_moved_to_next_line", r"line 5: joint 0 of frame 0 has 11 fields, expected 12"),
    ("lone_cr", r"joint \d+ of frame 0 has \d+ fields, expected 12"),
    ("body_id_overflow", r"line 3: bodyID '18446744073709551616' is not a 64-bit unsigned integer"),
    ("body_id_negative", r"line 3: bodyID '-5' is not a 64-bit unsigned integer"),
    ("inf", r"line 5: 'inf' is not a finite number"),
    ("nul_byte", r"line 5: non-numeric field"),
])
def test_what_the_fast_reader_refuses_the_careful_reader_names(tmp_path, edit, pattern):
    g = _lines(5)
    f = g[4].split()
    if edit == "field_moved_to_next_line": g[4], g[5] = " ".join(f[:11]) + "\n", f[11] + " " + g[5]
    if edit == "lone_cr": g[4] = " ".join(f[:6]) + "\r" + " ".join(f[6:]) + "\n"
    if edit == "body_id_overflow": g[2] = "18446744073709551616 " + g[2].split(" ", 1)[1]
    if edit == "body_id_negative": g[2] = "-5 " + g[2].split(" ", 1)[1]
    if edit == "inf": g[4] = "inf " + " ".join(f[1:]) + "\n"
    if edit == "nul_byte": g[4] = f[0] + "\0 " + " ".join(f[1:]) + "\n"
    p = _write(tmp_path, g)
    assert _fast(p.read_bytes())[0] == 1
    with pytest.raises(DataFormatError) as e:
        read_skeleton(p)
    assert re.search(pattern, one_line(e)), str(e.value)


def test_body_id_at_the_64_bit_limit_is_exact(tmp_path):
    g = _lines(5)
    g[2] = "18446744073709551615 " + g[2].split(" ", 1)[1]
    p = _write(tmp_path, g)
    assert _fast(p.read_bytes())[0] == 0
    assert int(read_skeleton(p)["body_id"][0]) == 2**64 - 1


def test_generated_two_person_file_with_empty_frames_round_trips(tmp_path):
    rng = np.random.default_rng(3)
    xyz = np.round(rng.normal(size=(6, 25, 3)), 5)
    frames = [[], [(5, np.zeros(9), skeleton_from_xyz(xyz)[0])], [],
              [(5, np.zeros(9), skeleton_from_xyz(xyz)[1]), (2**64 - 1, np.arange(9.0), skeleton_from_xyz(xyz)[2])]]
    sk = read_skeleton(write_skeleton(tmp_path / "S001C001P001R001A055.skeleton", frames, crlf=True))
    assert sk["body_count"].tolist() == [0, 1, 0, 2]
    assert sk["frame"].tolist() == [1, 3, 3]
    assert int(sk["body_id"][2]) == 2**64 - 1
    np.testing.assert_array_equal(sk["joints"][:, :, :3], xyz[:3])
    np.testing.assert_array_equal(sk["info"][2], np.arange(9.0))
    assert [b["frames"].tolist() for b in sk["bodies"]] == [[1, 3], [3]]


def test_failed_write_keeps_the_old_file(tmp_path):
    p = tmp_path / "S001C001P001R001A003.skeleton"
    p.write_bytes(FILES[3].read_bytes())

    def half_then_fail(f):
        f.write(b"12\n")
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        atomic_write(p, half_then_fail)
    with pytest.raises(DataFormatError, match="joints must be"):   # bad data: nothing is written
        write_skeleton(p, [[(1, np.zeros(9), np.zeros((24, 12)))]])
    assert p.read_bytes() == FILES[3].read_bytes()
    assert [q.name for q in tmp_path.iterdir()] == [p.name]         # no temporary file left behind


# ---------------------------------------------------------------- NTU .skeleton, bad input
def _lines(action=5):
    return FILES[action].read_text().splitlines(keepends=True)


def _write(tmp_path, lines, name="bad.skeleton"):
    p = tmp_path / name
    p.write_text("".join(lines))
    return p


@pytest.mark.parametrize("case, pattern", [
    ("truncated", r"bad\.skeleton: truncated"),
    ("truncated_mid_line", r"bad\.skeleton: line \d+: joint \d+ of frame \d+ has \d+ fields, expected 12"),
    ("joint_count", r"bad\.skeleton: line 4: wrong joint-count line '24'"),
    ("non_numeric", r"bad\.skeleton: line 12: non-numeric field '0\.1x'"),
    ("nan", r"bad\.skeleton: line 9: 'NaN' is not a finite number"),
    ("only_empty_frames", r"bad\.skeleton: no bodies: all 4 frames have 0 bodies"),
    ("empty_clip", r"bad\.skeleton: empty clip"),
    ("empty_file", r"bad\.skeleton: empty file"),
    ("trailing", r"bad\.skeleton: line \d+: unexpected data after the last of the 54 frames"),
    ("body_count", r"bad\.skeleton: line 2: expected the body count of frame 0"),
    ("info_fields", r"bad\.skeleton: line 3: body info of frame 0 has 9 fields, expected 10"),
])
def test_bad_skeleton_files(tmp_path, case, pattern):
    g = _lines()
    bad = {
        "truncated": g[:700],
        "truncated_mid_line": g[:700] + [g[700][:20]],
        "joint_count": g[:3] + ["24\n"] + g[4:],
        "non_numeric": g[:11] + [" ".join(g[11].split()[:1] + ["0.1x"] + g[11].split()[2:]) + "\n"] + g[12:],
        "nan": g[:8] + ["NaN " + g[8].split(" ", 1)[1]] + g[9:],
        "only_empty_frames": ["4\n", "0\n", "0\n", "0\n", "0\n"],
        "empty_clip": ["0\n"],
        "empty_file": [],
        "trailing": g + ["1 2 3\n"],
        "body_count": g[:1] + ["1.5\n"] + g[2:],
        "info_fields": g[:2] + [g[2].rsplit(" ", 1)[0] + "\n"] + g[3:],
    }[case]
    p = _write(tmp_path, bad)
    with pytest.raises(DataFormatError) as e:
        read_skeleton(p)
    assert re.search(pattern, one_line(e)), str(e.value)


def test_missing_skeleton_file(tmp_path):
    with pytest.raises(DataFormatError) as e:
        read_skeleton(tmp_path / "S001C001P001R001A001.skeleton")
    assert one_line(e).endswith("S001C001P001R001A001.skeleton: file not found")


def test_only_empty_frames_allowed_on_request(tmp_path):
    p = _write(tmp_path, ["2\n", "0\n", "0\n"])
    assert read_skeleton(p, allow_empty=True)["body_count"].tolist() == [0, 0]


# ---------------------------------------------------------------- CTR-GCN npz
def _npz_from_sample(tmp_path, **over):
    clip = np.load(NTU / "paddlevideo_example_NTU-RGB-D_sketeton.npy")          # (3, 300, 25, 2)
    flat = clip.transpose(1, 3, 2, 0).reshape(1, 300, 150)
    arrays = dict(x_train=np.concatenate([flat, flat * 0]), y_train=np.eye(60)[[4, 7]],
                  x_test=flat, y_test=np.eye(60)[[4]])
    arrays.update(over)
    p = tmp_path / "NTU60_CS.npz"
    np.savez(p, **arrays)
    return p, clip


def test_load_ntu_npz_real_sample(tmp_path):
    p, clip = _npz_from_sample(tmp_path)
    x, y = load_ntu_npz(p, "train")
    assert x.shape == (2, 3, 300, 25, 2) and x.dtype == np.float32 and y.tolist() == [4, 7]
    np.testing.assert_array_equal(x[0], clip)
    # 72 non-zero frames and an empty second person, as the sample's README says
    assert int((np.abs(x[0]).sum((0, 2, 3)) > 0).sum()) == 72 and not x[0, ..., 1].any()


@pytest.mark.parametrize("over, pattern", [
    (dict(x_test=np.zeros((1, 3, 300, 25, 2), np.float32)), "x_test must have rank 3"),
    (dict(y_test=np.eye(60)[[4, 5]]), "1 clips but y_test has 2 labels"),
    (dict(y_test=np.full((1, 60), 0.5)), "not one-hot"),
    (dict(y_test=np.array([-1])), "label out of range: -1"),
    (dict(x_test=np.full((1, 300, 150), np.nan, np.float32)), "NaN"),
])
def test_load_ntu_npz_bad(tmp_path, over, pattern):
    p, _ = _npz_from_sample(tmp_path, **over)
    with pytest.raises(DataFormatError) as e:
        load_ntu_npz(p, "test")
    assert pattern in one_line(e) and str(p) in str(e.value)


def test_load_ntu_npz_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="file not found"):
        load_ntu_npz(tmp_path / "NTU60_CV.npz", "test")


# ---------------------------------------------------------------- FSD-10
def _fsd_split(tmp_path, names=("s0",), labels=(3,), data=None):
    x = np.load(REAL / "fsd10" / "paddlevideo_fsd_example_skeleton.npy")            # (3, 2500, 25, 1)
    data = x[None, :, :1500].astype(np.float32) if data is None else data
    np.save(tmp_path / "train_data_25.npy", data)
    with open(tmp_path / "train_label_25.pkl", "wb") as f:
        pickle.dump((list(names), list(labels)), f)
    return tmp_path / "train_data_25.npy", tmp_path / "train_label_25.pkl", x


def test_fsd10_real_sample(tmp_path):
    d, l, x = _fsd_split(tmp_path)
    data, names, labels = load_fsd10(d, l)
    assert isinstance(data, np.memmap) and data.shape == (1, 3, 1500, 25, 1)
    assert names == ["s0"] and labels.dtype == np.int64 and labels.tolist() == [3]
    np.testing.assert_array_equal(data[0], x[:, :1500].astype(np.float32))
    valid = np.flatnonzero(np.abs(data[0]).sum((0, 2, 3)) > 0)
    assert valid.max() == 116 and len(valid) <= 117                              # 117 valid frames (README)
    assert FSD10_CLASSES[labels[0]] == "3Loop"
    data2, _, _ = load_fsd10(d, l, mmap=False)
    assert type(data2) is np.ndarray


def test_fsd10_class_order_is_configurable(tmp_path):
    d, l, _ = _fsd_split(tmp_path, labels=(12,))
    with pytest.raises(DataFormatError, match="label out of range: 12"):
        load_fsd10(d, l)
    assert load_fsd10(d, l, class_names=[f"c{i}" for i in range(13)])[2].tolist() == [12]


@pytest.mark.parametrize("kw, pattern, which", [
    (dict(names=("a", "b"), labels=(1,)), "2 sample names but 1 labels", "label"),
    (dict(names=("a", "b"), labels=(1, 2)), "2 labels for 1 clips", "label"),
    (dict(labels=(10,)), "label out of range: 10", "label"),
    (dict(data=np.zeros((3, 100, 25, 1), np.float32)), "expected rank 5", "data"),
    (dict(data=np.full((1, 3, 10, 25, 1), np.nan, np.float32)), "NaN", "data"),
    (dict(data=np.zeros((1, 3, 0, 25, 1), np.float32)), "empty", "data"),
])
def test_fsd10_bad(tmp_path, kw, pattern, which):
    d, l, _ = _fsd_split(tmp_path, **kw)
    with pytest.raises(DataFormatError) as e:
        load_fsd10(d, l)
    msg = one_line(e)
    assert pattern in msg and msg.startswith(str(d if which == "data" else l))


def test_fsd10_missing_file(tmp_path):
    with pytest.raises(DataFormatError, match="train_label_25.pkl: file not found"):
        load_fsd10(REAL / "fsd10" / "paddlevideo_fsd_example_skeleton.npy", tmp_path / "train_label_25.pkl")


# ---------------------------------------------------------------- PYSKL (FineGym99 layout)
@pytest.fixture
def anno():
    with open(REAL / "pyskl" / "paddlevideo_example_UCF101_skeleton.pkl", "rb") as f:
        return pickle.load(f)


def _dump(tmp_path, obj, name="gym.pkl"):
    p = tmp_path / name
    with open(p, "wb") as f:
        pickle.dump(obj, f)
    return p


def test_pyskl_split_wrapper_real_annotation(tmp_path, anno):
    fd = anno["frame_dir"]
    d = load_pyskl(_dump(tmp_path, {"split": {"train": [fd], "val": [fd]}, "annotations": [anno]}))
    assert d["split"] == {"train": [fd], "val": [fd]}
    a = d["annotations"][0]
    assert a["keypoint"].shape == (2, 163, 17, 2) and a["keypoint"].dtype == np.float16
    assert a["total_frames"] == 163 and tuple(a["img_shape"]) == (256, 340)
    x = pyskl_clip(a)
    assert x.shape == (3, 163, 17, 2) and x.dtype == np.float32
    np.testing.assert_array_equal(x[2, :, :, 0], anno["keypoint_score"][0].astype(np.float32))
    # second person present in only 14 frames (README)
    assert int((anno["keypoint_score"][1].astype(np.float32).sum(-1) > 0).sum()) == 14


def test_pyskl_plain_list_and_single_dict(tmp_path, anno):
    assert load_pyskl(_dump(tmp_path, [anno, anno]))["split"] == {}
    assert len(load_pyskl(_dump(tmp_path, anno, "one.pkl"))["annotations"]) == 1


def test_pyskl_normalisation(tmp_path, anno):
    a = load_pyskl(_dump(tmp_path, [anno]), normalize=True)["annotations"][0]
    h, w = anno["img_shape"]
    kp, sc = anno["keypoint"].astype(np.float32), anno["keypoint_score"].astype(np.float32)
    expect = (kp - [w / 2, h / 2]) / [w / 2, h / 2]
    expect[sc <= 0.01] = 0
    np.testing.assert_allclose(a["keypoint"], expect, rtol=0, atol=1e-6)
    assert a["keypoint"].dtype == np.float32


def test_pyskl_label_map(tmp_path, anno):
    lm = tmp_path / "gym_label_map.txt"
    lm.write_text("".join(f"element {i}\n" for i in range(99)))
    d = load_pyskl(_dump(tmp_path, [dict(anno, label=98)]), label_map=lm)
    assert len(d["class_names"]) == 99 and d["class_names"][98] == "element 98"
    with pytest.raises(DataFormatError) as e:
        load_pyskl(_dump(tmp_path, [dict(anno, label=99)]), label_map=lm)
    assert "label out of range: 99" in one_line(e)
    with pytest.raises(DataFormatError, match="has 99 names, expected 98"):
        load_label_map(lm, 98)


@pytest.mark.parametrize("change, pattern", [
    (lambda a: dict(a, keypoint=a["keypoint"][0]), "rank 4"),
    (lambda a: dict(a, keypoint=a["keypoint"][:, :0], keypoint_score=a["keypoint_score"][:, :0]), "empty clip"),
    (lambda a: dict(a, keypoint_score=a["keypoint_score"][:, :5]), "keypoint_score has shape"),
    (lambda a: dict(a, keypoint=np.where(np.arange(17)[:, None] == 3, np.nan, a["keypoint"]).astype(np.float16)), "NaN"),
    (lambda a: dict(a, label=-1), "label out of range: -1"),
    (lambda a: {k: v for k, v in a.items() if k != "label"}, "misses label"),
])
def test_pyskl_bad(tmp_path, anno, change, pattern):
    p = _dump(tmp_path, [change(anno)])
    with pytest.raises(DataFormatError) as e:
        load_pyskl(p)
    assert pattern in one_line(e) and str(e.value).startswith(str(p))


def test_pyskl_bad_files(tmp_path):
    with pytest.raises(DataFormatError, match="file not found"):
        load_pyskl(tmp_path / "nope.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    with pytest.raises(DataFormatError, match="not a readable pickle"):
        load_pyskl(tmp_path / "junk.pkl")
    with pytest.raises(DataFormatError, match="no annotations"):
        load_pyskl(_dump(tmp_path, []))


# ---------------------------------------------------------------- OpenPose JSON
def test_openpose_dir(tmp_path):
    rng = np.random.default_rng(0)
    kps = rng.uniform(0, 1, (4, 2, 25, 3))
    for t in [3, 0, 2, 1]:                                   # written out of order; sorted by frame number
        people = [{"pose_keypoints_2d": kps[t, m].ravel().tolist()} for m in range(2 if t != 2 else 0)]
        (tmp_path / f"vid_{t:012d}_keypoints.json").write_text(json.dumps({"version": 1.3, "people": people}))
    x = read_openpose_dir(tmp_path)
    assert x.shape == (3, 4, 25, 2) and x.dtype == np.float32
    assert not x[:, 2].any()
    for t in (0, 1, 3):                                      # people ranked by summed confidence
        order = np.argsort(-kps[t, :, :, 2].sum(1))
        np.testing.assert_allclose(x[:, t].transpose(2, 1, 0), kps[t, order], atol=1e-6)


def test_openpose_bad(tmp_path):
    with pytest.raises(DataFormatError, match="no .json files"):
        read_openpose_dir(tmp_path)
    (tmp_path / "a_000000000000_keypoints.json").write_text("{")
    with pytest.raises(DataFormatError, match="not valid JSON"):
        read_openpose_dir(tmp_path)
    (tmp_path / "a_000000000000_keypoints.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [float("nan")] * 75}]}))
    with pytest.raises(DataFormatError, match="NaN"):
        read_openpose_dir(tmp_path)


@pytest.mark.parametrize("variant", ["indented", "blank_lines", "tabs_no_final_newline"])
def test_whitespace_variants_read_the_same(tmp_path, variant):
    lines = FILES[5].read_text().splitlines()
    text = {"indented": "\n".join("  " + l for l in lines) + "\n",
            "blank_lines": "\n".join(l + "\n" if i % 28 == 1 else l for i, l in enumerate(lines)) + "\n",
            "tabs_no_final_newline": "\n".join(l.replace(" ", "\t") + "  " for l in lines)}[variant]
    p = tmp_path / "S001C001P001R001A005.skeleton"
    p.write_text(text)
    a, b = read_skeleton(FILES[5]), read_skeleton(p)
    for k in ("body_count", "body_id", "info", "joints"):
        np.testing.assert_array_equal(a[k], b[k])


def test_fast_and_careful_readers_agree_on_the_generated_ntu_samples():
    files = sorted((Path(__file__).resolve().parents[1] / "data_samples" / "ntu" / "skeletons").glob("*.skeleton"))
    assert len(files) >= 10
    for p in files:
        buf = p.read_bytes()
        status, *fast = _fast(buf)
        assert status == 0, p.name
        for f, c in zip(fast, R._read_lines(p, buf.decode())):
            assert _bits(f) == _bits(c), p.name


@pytest.mark.parametrize("make, pattern", [
    (lambda g: ["1" * 4301 + "\n"] + g[1:], r"line 1: expected the frame count \(one non-negative integer of at most 9 digits\)"),
    (lambda g: g[:1] + ["٥\n"] + g[2:], r"line 2: expected the body count of frame 0"),             # not an ASCII digit
    (lambda g: g[:2] + ["9" * 4301 + " " + g[2].split(" ", 1)[1]] + g[3:], r"line 3: bodyID '9{40}' is not a 64-bit"),
    (lambda g: g[:4] + ["x" * 100000 + " " + g[4].split(" ", 1)[1]] + g[5:], r"line 5: non-numeric field 'x{40}' in joint 0"),
])
def test_huge_or_foreign_tokens_give_a_short_one_line_error(tmp_path, make, pattern):
    p = _write(tmp_path, make(_lines(5)))
    with pytest.raises(DataFormatError) as e:
        read_skeleton(p)
    msg = one_line(e)
    assert re.search(pattern, msg), msg[:300]
    assert len(msg) < 300


def test_a_body_id_with_many_leading_zeros_reads_the_same_on_both_paths(tmp_path):
    g = _lines(5)
    g[2] = "0" * 4300 + "7 " + g[2].split(" ", 1)[1]
    p = _write(tmp_path, g)
    buf = p.read_bytes()
    status, *fast = _fast(buf)
    assert status == 0
    careful = R._read_lines(p, buf.decode())
    assert all(_bits(f) == _bits(c) for f, c in zip(fast, careful))
    assert int(read_skeleton(p)["body_id"][0]) == 7


def test_the_skeleton_parser_is_a_leaf_module():
    "mdr_gcn_nb.data.skeleton_parser (the numba kernel, 90_skeleton_parser) imports neither readers nor anything else of ours."
    import ast
    src = (Path(__file__).resolve().parents[1] / "mdr_gcn_nb" / "data" / "skeleton_parser.py").read_text()
    mods = {n.module or "" for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)} | \
           {a.name for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Import) for a in n.names}
    assert mods <= {"__future__", "numba", "numpy"}, mods
    assert R._skeleton_kernel is SP._skeleton_kernel                # read_skeleton uses this very kernel
