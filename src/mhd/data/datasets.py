"""Datasets: find the raw files, read them in their official formats, verify, cache as tensors.

Formats: IDX (MNIST, Fashion-MNIST), the official CIFAR-10/100 python pickles, and ImageNet-style
folders (<root>/train/<class>/*.jpg, <root>/val/<class>/*.jpg). The prepared cache is
data/prepared/<name>.pt (uint8 images N x C x H x W, int64 labels) with <name>.json beside it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import files
from ..errors import DataError

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IDX_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
             "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like, so a wrong or damaged copy is caught before it is used."""
    format: str                         # idx | cifar | imagefolder
    classes: int | None = None          # None: from the data (imagefolder)
    train: int | None = None
    test: int | None = None
    shape: tuple[int, ...] | None = None
    balanced: bool = False              # every class has train/classes and test/classes samples
    sha256: dict = field(default_factory=dict)   # decompressed raw file -> hash, where measured
    md5: dict = field(default_factory=dict)      # raw file -> the official md5 (CIFAR's python pickles)
    search: tuple[str, ...] = ()        # folders looked in when dataset.root is not set
    torchvision: str | None = None      # torchvision class that can download it
    how_to_get: str = ""
    class_names: tuple[str, ...] = ()


KNOWN = {
    "fashion_mnist": DatasetInfo(
        "idx", 10, 60000, 10000, (1, 28, 28), balanced=True,
        # sha256 of the decompressed IDX files, measured on the Debian package dataset-fashion-mnist
        sha256={"train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"},
        search=("/usr/share/datasets/fashion-mnist", "data/raw/fashion_mnist", "data/raw/FashionMNIST/raw"),
        torchvision="FashionMNIST",
        how_to_get="`apt-get install dataset-fashion-mnist` (Debian/Ubuntu), or set dataset.root to a folder "
                   "holding the four *-ubyte(.gz) files, or set dataset.download: true where the network allows",
        class_names=tuple(FASHION_CLASSES)),
    "mnist": DatasetInfo(
        "idx", 10, 60000, 10000, (1, 28, 28),
        # sha256 of the decompressed IDX files of the official release (LeCun's files; their gzipped copies
        # have the md5s torchvision checks, f68b3c2d..., d53e105e..., 9fb629c4..., ec29112d...)
        sha256={"train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"},
        search=("/usr/share/datasets/mnist", "data/raw/mnist", "data/raw/MNIST/raw"), torchvision="MNIST",
        how_to_get="set dataset.root to a folder holding the four MNIST *-ubyte(.gz) files, or set "
                   "dataset.download: true where the network allows",
        class_names=tuple(str(c) for c in range(10))),
    "cifar10": DatasetInfo(
        "cifar", 10, 50000, 10000, (3, 32, 32), balanced=True,
        # the md5s of the official python version's files (those torchvision checks)
        md5={"data_batch_1": "c99cafc152244af753f735de768cd75f", "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
             "data_batch_3": "54ebc095f3ab1f0389bbae665268c751", "data_batch_4": "634d18415352ddfa80567beed471001a",
             "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb", "test_batch": "40351d587109b95175f43aff81a1287e",
             "batches.meta": "5ff9c542aee3614f3951f8cda6e48888"},
        search=("data/raw/cifar-10-batches-py",), torchvision="CIFAR10",
        how_to_get="set dataset.root to the unpacked cifar-10-batches-py folder of the official python "
                   "version, or set dataset.download: true where the network allows"),
    "cifar100": DatasetInfo(
        "cifar", 100, 50000, 10000, (3, 32, 32), balanced=True,
        md5={"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
             "meta": "7973b15100ade9c7d40fb424638fde48"},
        search=("data/raw/cifar-100-python",), torchvision="CIFAR100",
        how_to_get="set dataset.root to the unpacked cifar-100-python folder of the official python "
                   "version, or set dataset.download: true where the network allows"),
    "imagefolder": DatasetInfo(
        "imagefolder",
        how_to_get="set dataset.root to a folder with train/<class>/*.jpg and val/<class>/*.jpg "
                   "(the ImageNet layout); images are resized to dataset.image_size"),
}


# ---------------------------------------------------------------- readers of the official formats
def _open_maybe_gz(path: Path) -> bytes:
    data = files.read_regular(path, "a regular IDX file, optionally gzipped (*-ubyte or *-ubyte.gz)")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: corrupt gzip file ({exc})") from exc
    return data


def read_idx(path: str | Path) -> tuple[np.ndarray, str]:
    """An IDX file (optionally gzipped) as a uint8 array, and the sha256 of its decompressed bytes."""
    path = Path(path)
    data = _open_maybe_gz(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex() or 'empty'})")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{path}: the IDX header announces {ndim} dimensions but the file ends after "
                        f"{len(data)} bytes: truncated or corrupt")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = data[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path}: header says {dims} = {int(np.prod(dims))} bytes, file holds {len(body)}: "
                        f"truncated or corrupt")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims), hashlib.sha256(data).hexdigest()


class _SafeUnpickler(pickle.Unpickler):
    """CIFAR's files are pickles of dicts of numpy arrays; refuse anything else, so a tampered file
    cannot run code."""
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_cifar_pickle(path: str | Path) -> dict:
    path = Path(path)
    raw = files.read_regular(path, "a regular file, a python pickle of the official CIFAR python version")
    try:
        obj = _SafeUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except Exception as exc:
        raise DataError(f"{path}: not a CIFAR python pickle ({type(exc).__name__}: {exc})") from exc
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_arrays(batch: dict, key: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(batch[key], dtype=np.int64)
    except (KeyError, ValueError) as exc:
        raise DataError(f"{path}: CIFAR batch without a valid 'data' / '{key}' entry ({exc})") from exc
    return x, y


def read_cifar(root: Path, classes: int) -> dict:
    if classes == 10:
        train_files, test_files, key, meta_file, names_key = (
            [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", "batches.meta", "label_names")
    else:
        train_files, test_files, key, meta_file, names_key = (["train"], ["test"], "fine_labels", "meta",
                                                             "fine_label_names")
    missing = [f for f in [*train_files, *test_files] if not os.path.lexists(root / f)]
    if missing:
        info = KNOWN["cifar10" if classes == 10 else "cifar100"]
        raise DataError(f"CIFAR folder {root} lacks {', '.join(missing)}; it must hold "
                        f"{', '.join([*train_files, *test_files, meta_file])} (the official python version). "
                        f"To get it: {info.how_to_get}")
    out: dict = {"md5": {f: hashlib.md5((root / f).read_bytes()).hexdigest()
                         for f in [*train_files, *test_files, meta_file] if (root / f).is_file()}}
    for part, files in (("train", train_files), ("test", test_files)):
        xs, ys = zip(*(_cifar_arrays(read_cifar_pickle(root / f), key, root / f) for f in files))
        out[f"{part}_x"], out[f"{part}_y"] = np.concatenate(xs), np.concatenate(ys)
    meta_path = root / meta_file
    names = read_cifar_pickle(meta_path).get(names_key, []) if meta_path.exists() else []
    out["class_names"] = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return out


def read_imagefolder(root: Path, image_size: int) -> dict:
    from PIL import Image

    parts = {"train": root / "train", "test": root / "val" if (root / "val").is_dir() else root / "test"}
    missing = [str(p) for p in parts.values() if not p.is_dir()]
    if missing:
        raise DataError(f"image folder {root}: missing {', '.join(missing)}; expected train/<class>/ and "
                        f"val/<class>/ (or test/<class>/)")
    names = sorted(d.name for d in parts["train"].iterdir() if d.is_dir())
    if not names:
        raise DataError(f"image folder {parts['train']}: no class folders")
    out: dict = {"class_names": names}
    for part, folder in parts.items():
        xs, ys = [], []
        for c, name in enumerate(names):
            for f in sorted((folder / name).glob("*")) if (folder / name).is_dir() else []:
                if f.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp", ".webp"}:
                    continue
                raw = files.read_regular(f, "a regular image file (.jpg, .jpeg, .png, .bmp, .webp)")  # never a FIFO
                try:
                    with Image.open(io.BytesIO(raw)) as im:
                        im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                        xs.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
                except OSError as exc:
                    raise DataError(f"{f}: unreadable image ({exc})") from exc
                ys.append(c)
        if not xs:
            raise DataError(f"image folder {folder}: no images found")
        out[f"{part}_x"], out[f"{part}_y"] = np.stack(xs), np.asarray(ys, dtype=np.int64)
    return out


# ---------------------------------------------------------------- locate, verify, prepare, load
def _has_raw(info: DatasetInfo, folder: Path) -> bool:
    if info.format == "idx":
        return all((folder / f).exists() or (folder / f"{f}.gz").exists() for f in IDX_FILES.values())
    if info.format == "cifar":
        return (folder / ("test_batch" if info.classes == 10 else "test")).exists()
    return (folder / "train").is_dir()


def locate(name: str, root: str | None, download: bool, raw_dir: str | Path = "data/raw") -> Path:
    """The folder holding the raw files: dataset.root if set, else the usual places, else a download."""
    info = KNOWN[name]
    candidates = [Path(root).expanduser()] if root else [Path(p) for p in info.search]
    for folder in candidates:
        if folder.is_dir() and _has_raw(info, folder):
            return folder
    if download and info.torchvision and not root:
        return _download(name, info, Path(raw_dir))
    looked = ", ".join(str(c) for c in candidates) or "(no folder given)"
    raise DataError(f"dataset {name!r} not found; looked in: {looked}. To get it: {info.how_to_get}")


def _download(name: str, info: DatasetInfo, raw_dir: Path) -> Path:
    from ..vision import import_torchvision

    datasets = import_torchvision().datasets
    cls = getattr(datasets, info.torchvision)
    try:
        for train in (True, False):
            cls(root=str(raw_dir), train=train, download=True)
    except Exception as exc:  # network errors come in many types
        raise DataError(f"dataset {name!r}: download into {raw_dir} failed ({type(exc).__name__}: {exc}). "
                        f"To get it: {info.how_to_get}") from exc
    for folder in map(Path, info.search):
        if folder.is_dir() and _has_raw(info, folder):
            return folder
    raise DataError(f"dataset {name!r}: downloaded into {raw_dir}, but the files are not where expected")


def read_raw(name: str, folder: Path, image_size: int = 64) -> dict:
    info = KNOWN[name]
    if info.format == "idx":
        out: dict = {"sha256": {}}
        for key, fname in IDX_FILES.items():
            path = folder / fname if (folder / fname).exists() else folder / f"{fname}.gz"
            arr, digest = read_idx(path)
            out[key], out["sha256"][fname] = (arr[:, None] if key.endswith("_x") else arr.astype(np.int64)), digest
        out["class_names"] = list(info.class_names)
        return out
    if info.format == "cifar":
        return read_cifar(folder, info.classes)
    return read_imagefolder(folder, image_size)


def check_identity(name: str, data: dict, folder: Path) -> None:
    """Refuse the files of another known dataset under this name (Fashion-MNIST's files as mnist),
    whether or not verification was asked: the name says which dataset the figures and claims are of."""
    for algorithm in ("sha256", "md5"):
        for fname, digest in data.get(algorithm, {}).items():
            for other, info in KNOWN.items():
                if other != name and digest in getattr(info, algorithm).values():
                    raise DataError(f"dataset {name!r}: {fname} in {folder} is a file of {other!r} ({algorithm} "
                                    f"{digest[:16]}... is that of {other}'s official release), not of {name!r}; "
                                    f"set dataset.name: {other}, or dataset.root to a folder of {name}'s files")


def _hash_problems(name: str, data: dict) -> list[str]:
    """With verification: every raw file read must have the official hash of the NAMED dataset. A dataset
    without official hashes (imagefolder) is checked by its sizes alone."""
    info = KNOWN[name]
    if not info.sha256 and not info.md5:
        return []
    problems = []
    for algorithm in ("sha256", "md5"):
        official = getattr(info, algorithm)
        for fname, digest in data.get(algorithm, {}).items():
            if fname not in official:
                problems.append(f"{fname}: no official {algorithm} of it is known for {name}, so it cannot be verified")
            elif digest != official[fname]:
                problems.append(f"{fname}: {algorithm} {digest[:16]}..., expected {official[fname][:16]}...")
    return problems


def check_release(name: str, data: dict, strict: bool) -> int:
    """Check internal consistency always; with `strict`, also the official sizes, class counts and
    content hashes of the named dataset. Returns the number of classes."""
    info = KNOWN[name]
    classes = info.classes or len(data["class_names"])
    for part in ("train", "test"):
        x, y = data[f"{part}_x"], data[f"{part}_y"]
        if len(x) != len(y) or len(x) == 0:
            raise DataError(f"dataset {name!r} ({part}): {len(x)} images but {len(y)} labels")
        if y.min() < 0 or y.max() >= classes:
            raise DataError(f"dataset {name!r} ({part}): labels span {y.min()}..{y.max()}, "
                            f"expected 0..{classes - 1}")
    if not strict:
        return classes
    problems = []
    for part, want in (("train", info.train), ("test", info.test)):
        x, y = data[f"{part}_x"], data[f"{part}_y"]
        if want is not None and len(x) != want:
            problems.append(f"{part}: {len(x)} samples, expected {want}")
        if info.shape and tuple(x.shape[1:]) != info.shape:
            problems.append(f"{part}: images of shape {tuple(x.shape[1:])}, expected {info.shape}")
        counts = np.bincount(y, minlength=classes)
        if info.balanced and want is not None and not (counts == want // classes).all():
            problems.append(f"{part}: class counts {counts.tolist()}, expected {want // classes} each")
    problems += _hash_problems(name, data)
    if problems:
        raise DataError(f"dataset {name!r} does not match the official release: {'; '.join(problems)}. "
                        f"Reinstall it ({info.how_to_get}); for a deliberate subset set dataset.verify: false")
    return classes


def prepare(name: str, out: str | Path, *, root: str | None = None, download: bool = True,
            verify: bool = True, image_size: int = 64, raw_dir: str | Path = "data/raw") -> dict:
    """Read, verify and cache a dataset as tensors at `out` (.pt) with a `.json` record beside it."""
    if name not in KNOWN:
        raise DataError(f"unknown dataset {name!r}; allowed: {', '.join(KNOWN)}")
    folder = locate(name, root, download, raw_dir)
    data = read_raw(name, folder, image_size)
    check_identity(name, data, folder)
    classes = check_release(name, data, verify)
    import torch  # here, once the files are read and checked: a refusal comes without torch's start-up

    tensors = {k: torch.from_numpy(np.array(data[k], copy=True)) for k in ("train_x", "train_y", "test_x", "test_y")}
    out = Path(out)
    files.torch_save(out, tensors)
    record = {
        "name": name, "classes": classes,
        "class_names": data["class_names"] or [str(c) for c in range(classes)],
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "class_counts": {p: np.bincount(data[f"{p}_y"], minlength=classes).tolist() for p in ("train", "test")},
        "source": str(folder.resolve()), "raw_sha256": data.get("sha256", {}), "verified": verify,
        "sha256": files.sha256_file(out),
    }
    files.write_json(out.with_suffix(".json"), record)
    return record


def load(path: str | Path) -> tuple[dict, dict]:
    """Load a prepared dataset, refusing a cache whose bytes differ from the ones recorded, and a record
    whose facts (name, classes, shapes, class counts) differ from the tensors'."""
    import torch

    path = Path(path)
    meta_path = path.with_suffix(".json")
    if not path.exists() or not meta_path.exists():
        raise DataError(f"prepared dataset {path} (or its {meta_path.name}) is missing; "
                        f"run `snakemake --cores 1 {path}` (or `snakemake --cores 1 data_artefacts` for every "
                        f"artefact of the config) or `mhd prepare`")
    fix = f"delete it and {path.name}, and prepare again"
    meta = files.read_record(meta_path, {("sha256",): files.SHA256, ("shapes",): SHAPES}, fix)
    recorded = meta["sha256"]
    raw = files.read_regular(path, "a prepared dataset (.pt) written by mhd prepare")
    digest = files.sha256_bytes(raw)
    if digest != recorded:
        raise DataError(f"prepared dataset {path} is corrupt: sha256 {digest[:16]}... but {meta_path.name} "
                        f"records {recorded[:16]}...; delete both files and prepare again")
    try:
        tensors = torch.load(io.BytesIO(raw), weights_only=True)
    except Exception as exc:  # not a torch file, or objects other than tensors: never unpickled
        raise DataError(f"prepared dataset {path} is not a file of tensors ({type(exc).__name__}); delete it and "
                        f"{meta_path.name}, and prepare again") from exc
    if not isinstance(tensors, dict) or not all(isinstance(tensors.get(k), torch.Tensor) for k in meta["shapes"]):
        raise DataError(f"prepared dataset {path} does not hold the tensors {sorted(meta['shapes'])}; delete it and "
                        f"{meta_path.name}, and prepare again")
    for key, shape in meta["shapes"].items():
        if list(tensors[key].shape) != shape:
            raise DataError(f"prepared dataset {path}: {key} has shape {list(tensors[key].shape)}, "
                            f"expected {shape}")
    _check_facts(files.check_record(meta, meta_path, RECORD, fix), tensors, meta_path, fix)
    return tensors, meta


TENSORS = ("train_x", "train_y", "test_x", "test_y")
SHAPES = (lambda v: isinstance(v, dict) and all(files.INTS[0](s) for s in v.values()),
          "a mapping of tensor name to its shape, a list of integers >= 0")
# what a prepared dataset's record holds beyond sha256 and shapes (files.check_record)
RECORD = {("name",): (lambda v: isinstance(v, str) and v in KNOWN, f"one of {', '.join(KNOWN)}"), ("classes",): files.is_int(1),
          ("class_names",): files.TEXTS, ("class_counts", "train"): files.INTS, ("class_counts", "test"): files.INTS,
          ("shapes",): (lambda v: sorted(v) == sorted(TENSORS), f"the shapes of exactly {', '.join(TENSORS)}"),
          ("source",): files.TEXT, ("raw_sha256",): (lambda v: isinstance(v, dict) and all(
              files.SHA256[0](h) for h in v.values()), "a mapping of raw file to its sha256"),
          ("verified",): files.BOOLEAN}


def _check_facts(meta: dict, tensors: dict, meta_path: Path, fix: str) -> None:
    """The record's facts against the tensors: a record edited to `classes: 5` must not make a 5-class
    split of a 10-class dataset."""
    import torch

    name, classes, info = meta["name"], meta["classes"], KNOWN[meta["name"]]
    problems = []
    if info.classes is not None and classes != info.classes:
        problems.append(f"classes = {classes}, but {name} has {info.classes} classes")
    if len(meta["class_names"]) != classes:  # before counting: a made-up class count is never allocated
        problems.append(f"{len(meta['class_names'])} class_names for classes = {classes}")
        raise DataError(f"{meta_path} does not describe its tensors: {'; '.join(problems)}; {fix}")
    for part in ("train", "test"):
        x, y = tensors[f"{part}_x"], tensors[f"{part}_y"]
        if x.dtype != torch.uint8 or x.dim() != 4 or y.dtype != torch.int64 or y.dim() != 1 or len(x) != len(y):
            problems.append(f"{part}: expected uint8 images N x C x H x W and as many int64 labels, found {x.dtype} "
                            f"{list(x.shape)} and {y.dtype} {list(y.shape)}")
            continue
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            problems.append(f"classes = {classes}, but the {part} labels span {int(y.min())}..{int(y.max())}: "
                            f"classes must be > every label")
            continue
        counts = np.bincount(y.numpy(), minlength=classes).tolist()
        if meta["class_counts"][part] != counts:
            problems.append(f"class_counts.{part} = {meta['class_counts'][part]}, but the labels give {counts}")
        if info.shape and tuple(x.shape[1:]) != info.shape:
            problems.append(f"{part} images of shape {tuple(x.shape[1:])}, but {name}'s are {info.shape}")
    if problems:
        raise DataError(f"{meta_path} does not describe its tensors: {'; '.join(problems)}; {fix}")
