import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mhd.data import files, splits
from mhd.errors import ConfigError, DataError

LABELS = np.repeat(np.arange(10), 400)  # 4000 samples, 10 balanced classes
np.random.default_rng(0).shuffle(LABELS)

split_args = st.fixed_dictionaries({
    "clients": st.integers(1, 12),
    "scheme": st.sampled_from(["skew", "dirichlet", "inner_dirichlet"]),
    "skew": st.floats(1, 1000),
    "alpha": st.floats(0.05, 10),
    "public_fraction": st.floats(0, 0.5),
    "samples_per_client": st.integers(1, 150),
    "validation_per_class": st.integers(1, 60),
    "split_seed": st.integers(0, 2**31),
})


@settings(max_examples=60, deadline=None)
@given(split_args)
def test_split_properties(args):
    try:
        s = splits.make(LABELS, 10, **args)
    except ConfigError as exc:  # only a demand the data cannot meet may be refused
        assert ("impossible split" in str(exc) or "fewer than" in str(exc) or "no public set" in str(exc)
                or str(exc).startswith(f"validation_per_class = {args['validation_per_class']}: class "))
        return
    everything = np.concatenate([*s.private, s.public, s.validation])
    assert len(np.unique(everything)) == len(everything), "an index is used twice"
    assert everything.min() >= 0 and everything.max() < len(LABELS)
    sizes = [len(p) for p in s.private]
    if args["scheme"] == "dirichlet":  # NIID-Bench: sizes vary, the pool is clients x M
        assert sum(sizes) == args["clients"] * args["samples_per_client"]
        assert min(sizes) >= min(splits.NIID_BENCH_MIN_SIZE, args["samples_per_client"])
    else:
        assert sizes == [args["samples_per_client"]] * args["clients"]
    pub_counts = np.bincount(LABELS[s.public], minlength=10)
    assert (pub_counts == pub_counts[0]).all(), "public set is not class-balanced"
    assert len(s.public) == int(args["public_fraction"] * len(LABELS)) // 10 * 10
    assert (np.bincount(LABELS[s.validation], minlength=10) == args["validation_per_class"]).all(), \
        "validation set is not class-balanced"
    assert (np.diff(s.validation) > 0).all(), "validation indices are not sorted"
    np.testing.assert_allclose(s.distribution.sum(axis=1), 1.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 10), st.integers(1, 12))
def test_every_class_is_primary_and_every_client_has_one(clients, classes):
    primary = splits.deal_primary(clients, classes)
    assert all(primary)
    assert set().union(*map(set, primary)) == set(range(classes))
    if classes >= clients:  # disjoint groups
        assert sum(map(len, primary)) == classes
    if classes >= 2 and clients >= 2:  # read from the split, the primary classes are the ones dealt once skew > 1
        # (a single client is dealt every class: its split is uniform, nothing in it is primary)
        for skew in (1.5, 100.0):
            read = splits.primary_classes(np.round(splits.class_distribution("skew", clients, classes, skew=skew), 6))
            assert [np.flatnonzero(row).tolist() for row in read] == primary


def test_primary_classes_are_the_shares_above_uniform():
    """An iid client has none; a share equal to 1/C up to float rounding is not primary; on the 6-decimal
    shares split.json holds, the margin over 1/C changes no class (`> 1/C` gives the same)."""
    assert not splits.primary_classes(splits.class_distribution("skew", 4, 10, skew=1.0)).any()
    assert not splits.primary_classes(np.array([[1 / 3 + 1e-12, 1 / 3, 1 / 3 - 1e-12]])).any()
    for classes in range(1, 300):
        grid = np.round(np.arange(round(1e6 / classes) - 3, round(1e6 / classes) + 4) / 1e6, 6)
        shares = np.tile(grid, (classes, 1)).T[:, :classes]
        np.testing.assert_array_equal(splits.primary_classes(shares), shares > 1.0 / classes)


def test_skew_is_visible_in_the_counts():
    s = splits.make(LABELS, 10, clients=5, skew=100, public_fraction=0.2, samples_per_client=300)
    counts = s.counts(LABELS, 10)[:5]
    for i, prim in enumerate(splits.deal_primary(5, 10)):
        own = counts[i, prim].sum()
        assert own / 300 > 0.9, f"client {i} owns only {own} of its primary classes"


def test_skew_one_is_iid():
    s = splits.make(LABELS, 10, clients=4, skew=1, public_fraction=0.1, samples_per_client=200)
    counts = s.counts(LABELS, 10)[:4]
    assert (counts == 20).all()


def test_niid_bench_dirichlet_divides_each_class_over_the_clients():
    s = splits.make(LABELS, 10, clients=5, scheme="dirichlet", alpha=0.3, public_fraction=0.2, samples_per_client=300)
    counts = s.counts(LABELS, 10)[:5]
    assert (counts.sum(axis=0) == 150).all(), "every class gives clients x M / C = 150 samples"
    sizes = counts.sum(axis=1)
    assert sizes.sum() == 1500 and len(set(sizes.tolist())) > 1, "sizes vary around M"
    # the per-client scheme keeps equal sizes and is what `dirichlet` drew before it was renamed
    inner = splits.make(LABELS, 10, clients=5, scheme="inner_dirichlet", alpha=0.3, public_fraction=0.2,
                        samples_per_client=300, validation_per_class=10)
    assert [len(p) for p in inner.private] == [300] * 5
    assert not (inner.counts(LABELS, 10)[:5].sum(axis=0) == 150).all()


def test_niid_bench_dirichlet_that_starves_a_client_is_refused(monkeypatch):
    monkeypatch.setattr(splits, "DIRICHLET_ATTEMPTS", 3)
    with pytest.raises(ConfigError, match=r"alpha = 0.001: 3 draws all left a client with fewer than 10 samples"):
        splits.make(LABELS, 10, clients=12, scheme="dirichlet", alpha=0.001, public_fraction=0.1, samples_per_client=20)


def test_identical_inputs_identical_bytes(tmp_path):
    for d in ("a", "b"):
        s = splits.make(LABELS, 10, clients=3, scheme="dirichlet", alpha=0.3, samples_per_client=100, split_seed=7)
        splits.write(tmp_path / d, s, LABELS, 10, {"clients": 3, "seed": 7})
    for f in ("indices.csv", "stats.csv", "split.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    other = splits.make(LABELS, 10, clients=3, scheme="dirichlet", alpha=0.3, samples_per_client=100, split_seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(other.private, s.private))


def test_written_split_reads_back_and_tampering_is_caught(tmp_path):
    s = splits.make(LABELS, 10, clients=3, samples_per_client=50)
    splits.write(tmp_path, s, LABELS, 10, {"clients": 3})
    back, meta = splits.read(tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(back.private, s.private))
    assert np.array_equal(back.public, s.public)
    assert np.array_equal(back.validation, s.validation)
    stats = (tmp_path / "stats.csv").read_text().splitlines()
    assert stats[0] == "client,class,count" and stats[-11].startswith("public,9,") and stats[-1] == "validation,9,100"
    owners = [row.split(",")[0] for row in (tmp_path / "indices.csv").read_text().splitlines()[1:]]
    assert list(dict.fromkeys(owners)) == ["0", "1", "2", "public", "validation"]
    assert meta["sizes"] == {"0": 50, "1": 50, "2": 50, "public": 800, "validation": 1000}
    assert (back.counts(LABELS, 10)[-1] == 100).all()
    text = (tmp_path / "indices.csv").read_text()
    (tmp_path / "indices.csv").write_text(text[: len(text) // 2])
    with pytest.raises(Exception, match="does not match the hash"):
        splits.read(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    ({"skew": 0}, "skew = 0"),
    ({"skew": -3}, "skew = -3"),
    ({"scheme": "dirichlet", "alpha": 0}, "alpha = 0"),
    ({"scheme": "inner_dirichlet", "alpha": 0}, "alpha = 0"),
    ({"scheme": "pathological"}, "unknown split scheme 'pathological'"),
    ({"clients": 50, "samples_per_client": 100}, "50 x 100 = 5000 private samples asked"),
    ({"public_fraction": 1.0}, "public_fraction = 1.0"),
    ({"scheme": "inner_dirichlet", "alpha": 0.01, "samples_per_client": 900}, "impossible split"),
])
def test_impossible_splits_are_refused(kwargs, message):
    args = {"clients": 3, "samples_per_client": 100, **kwargs}
    with pytest.raises(ConfigError, match=message):
        splits.make(LABELS, 10, **args)


# sha256 of the private sets and the public set that splits.make drew before the validation set existed
BEFORE_VALIDATION = [
    ({"clients": 5, "skew": 100, "public_fraction": 0.2, "samples_per_client": 300},
     "017295093e780907337bde4b85cc69ed33f399a004a3ec79b005fad7fcf9f108"),
    ({"clients": 4, "scheme": "dirichlet", "alpha": 0.3, "public_fraction": 0.1, "samples_per_client": 200,
      "split_seed": 7}, "5f6cc26a0aad69ae67a537dd5ddcc47dfd17fe4435feaa56952f7c47679b18af"),
    ({"clients": 3, "scheme": "inner_dirichlet", "alpha": 0.5, "public_fraction": 0.05, "samples_per_client": 250,
      "split_seed": 3}, "5a26fa3751f7e5488503240c27b0041bcc5ae9630b19759cc6067537eb766efb"),
]


def _digest(s: splits.Split) -> str:
    h = hashlib.sha256()
    for a in [*s.private, s.public]:
        h.update(np.asarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()


@pytest.mark.parametrize("args, digest", BEFORE_VALIDATION)
def test_the_validation_set_leaves_the_public_and_private_sets_as_they_were(args, digest):
    """The validation set takes no random numbers and comes after the private sets: the public and private
    sets are byte for byte those drawn before it existed, whatever its size."""
    drawn = [splits.make(LABELS, 10, **args, validation_per_class=v) for v in (1, 20)]
    assert [_digest(s) for s in drawn] == [digest, digest]
    small, large = drawn
    assert set(small.validation) < set(large.validation), "a larger validation set extends the smaller one"


def test_the_validation_set_is_class_balanced_and_disjoint_from_every_other_set():
    s = splits.make(LABELS, 10, clients=5, skew=100, public_fraction=0.2, samples_per_client=300,
                    validation_per_class=30)
    assert len(s.validation) == 300 and (np.bincount(LABELS[s.validation], minlength=10) == 30).all()
    others = set(np.concatenate([*s.private, s.public]).tolist())
    assert not others & set(s.validation.tolist())
    assert s.counts(LABELS, 10).shape == (7, 10) and (s.counts(LABELS, 10)[-1] == 30).all()


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "5"])
def test_a_validation_set_that_is_not_a_positive_integer_is_refused(value):
    with pytest.raises(ConfigError, match=rf"validation_per_class = {value!r}: allowed: an integer >= 1"):
        splits.make(LABELS, 10, clients=3, samples_per_client=50, validation_per_class=value)


def test_a_validation_set_that_does_not_fit_names_the_class_and_what_is_left():
    # 400 per class, 80 public; client 0's primary classes 0 and 5 give it ~144 each of its 300
    args = {"clients": 5, "skew": 100, "public_fraction": 0.2, "samples_per_client": 300}
    drawn = splits.make(LABELS, 10, **args, validation_per_class=1)
    left = 400 - drawn.counts(LABELS, 10)[:-1].sum(axis=0)
    c = int(np.argmin(left))
    with pytest.raises(ConfigError, match=rf"validation_per_class = {left[c] + 1}: class {c} has only {left[c]} "
                                          rf"samples left after the public set and the private sets .* lower "
                                          rf"validation_per_class to at most {left[c]}, or lower samples_per_client"):
        splits.make(LABELS, 10, **args, validation_per_class=int(left[c]) + 1)
    assert len(splits.make(LABELS, 10, **args, validation_per_class=int(left[c])).validation) == 10 * left[c]


def _rewrite(split_dir, rows, sizes):
    """indices.csv as `rows` and split.json's sizes as `sizes`, the hash updated: an edit, or an old split."""
    raw = "\n".join(["client,index", *rows]) + "\n"
    (split_dir / "indices.csv").write_text(raw)
    meta = json.loads((split_dir / "split.json").read_text())
    meta["sha256"]["indices.csv"], meta["sizes"] = files.sha256_bytes(raw.encode()), sizes
    (split_dir / "split.json").write_text(json.dumps(meta))


def test_a_split_written_before_the_validation_set_is_refused_not_read_as_empty(tmp_path):
    s = splits.make(LABELS, 10, clients=3, samples_per_client=50, validation_per_class=5)
    splits.write(tmp_path, s, LABELS, 10, {"clients": 3})
    rows = (tmp_path / "indices.csv").read_text().splitlines()[1:]
    meta = json.loads((tmp_path / "split.json").read_text())
    _rewrite(tmp_path, [r for r in rows if not r.startswith("validation,")],
             {k: v for k, v in meta["sizes"].items() if k != "validation"})
    with pytest.raises(DataError, match=r"predates the validation set .* delete .* and rebuild it with snakemake"):
        splits.read(tmp_path)


def test_a_validation_index_in_a_private_set_is_refused(tmp_path):
    s = splits.make(LABELS, 10, clients=3, samples_per_client=50, validation_per_class=5)
    splits.write(tmp_path, s, LABELS, 10, {"clients": 3})
    rows = (tmp_path / "indices.csv").read_text().splitlines()[1:]
    taken = next(r for r in rows if r.startswith("validation,")).split(",")[1]
    _rewrite(tmp_path, [f"0,{taken}", *rows], {**json.loads((tmp_path / "split.json").read_text())["sizes"], "0": 51})
    back, _ = splits.read(tmp_path)
    with pytest.raises(DataError, match=rf"index {taken} appears more than once \(the private sets, the public set "
                                        rf"and the validation set must be disjoint\)"):
        splits.check(back, len(LABELS), tmp_path)
