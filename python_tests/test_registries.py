"""One registry helper (pyface.registry.Registry) behind heads, tasks, recipes,
optimizers, dataset types and transforms: listed, close names suggested, and only
registered names accepted (a writer, an error class or a module is no dataset type or
transform)."""
import os

import pytest
import torch

import pyface.data as D
from pyface.data import DATASETS, TRANSFORMS, open_dataset, register_dataset, write_recordio
from pyface.errors import ConfigError
from pyface.models import HEADS, model_config
from pyface.train import OPTIMIZERS, RECIPES, TASKS, Trainer, resolve_config


@pytest.fixture
def rec(tmp_path):
    ds = D.SyntheticFaces(2, 2, image_size=32, seed=0)
    path = tmp_path / "train.rec"
    write_recordio(str(path), [ds[i] for i in range(len(ds))], str(tmp_path / "train.idx"))
    return path


def test_a_writer_is_not_a_dataset_type_and_the_rec_file_is_untouched(rec):
    before, mtime = rec.read_bytes(), rec.stat().st_mtime_ns
    spec = {"type": "RecordIOWriter", "rec_path": str(rec)}
    with pytest.raises(ConfigError, match=r"^data\.train\.type: unknown dataset type 'RecordIOWriter' "
                                          r"\(did you mean 'RecordIOFaces'\?\); known dataset types: ") as e:
        open_dataset(spec, what="data.train")
    assert "\n" not in str(e.value)
    # the config names the key the same way when it is resolved, before anything is opened
    cfg = {"out_dir": str(rec.parent / "run"), "device": "cpu", "data": {"train": spec},
           "model": {"preset": "iresnet-tiny-multi"}, "tasks": ["hpe"]}
    with pytest.raises(ConfigError, match=r"^data\.train\.type: unknown dataset type 'RecordIOWriter'"):
        resolve_config(cfg)
    with pytest.raises(ConfigError, match=r"^data\.train\.type: unknown dataset type 'RecordIOWriter'"):
        Trainer(cfg)
    assert rec.read_bytes() == before and rec.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(rec.parent)) == ["train.idx", "train.rec"]
    # what is a dataset type still opens
    assert len(open_dataset({"type": "RecordIOFaces", "rec_path": str(rec)})) == 4


@pytest.mark.parametrize("name", ["DataError", "RecordIOReader", "read_manifest", "transforms", "np", "FaceDataset"])
def test_only_registered_datasets_are_dataset_types(name):
    assert hasattr(D, name) or name in ("np", "FaceDataset")  # reachable as attributes, yet refused
    with pytest.raises(ConfigError, match=rf"^dataset\.type: unknown dataset type '{name}'"):
        open_dataset({"type": name})


def test_dataset_type_typo_suggests_and_transforms_are_registered_only():
    with pytest.raises(ConfigError, match=r"unknown dataset type 'SyntheticFace' \(did you mean 'SyntheticFaces'"):
        open_dataset({"type": "SyntheticFace", "num_identities": 2, "images_per_identity": 2})
    base = {"type": "SyntheticFaces", "num_identities": 2, "images_per_identity": 2, "image_size": 32}
    for bad in ("np", "math", "torch", "face_box", "hflip", "Compose", "mirror_landmarks"):
        assert hasattr(D.transforms, bad)  # attributes of the module, not transforms
        with pytest.raises(ConfigError, match=rf"^val\.transform\[1\]\.type: unknown transform '{bad}'"):
            open_dataset({**base, "transform": [{"type": "Resize", "size": 40}, {"type": bad}]}, what="val")
    with pytest.raises(ConfigError, match=r"unknown transform 'RandomHorizontalFlp' \(did you mean "
                                          r"'RandomHorizontalFlip'"):
        open_dataset({**base, "transform": [{"type": "RandomHorizontalFlp"}]})
    ds = open_dataset({**base, "transform": [{"type": "Resize", "size": 40}, {"type": "hmtl_augmentation",
                                                                             "level": 1}]})
    assert ds[0]["image"].shape == (3, 40, 40)


def test_every_entry_is_what_its_registry_says():
    assert {"SyntheticFaces", "ManifestDataset", "RecordIOFaces", "W300LP", "EyeFolder", "ETHXGaze"} <= set(DATASETS)
    assert all(issubclass(c, torch.utils.data.Dataset) for _, c in DATASETS.items())
    assert all(callable(t) for _, t in TRANSFORMS.items()) and "Resize" in TRANSFORMS
    with pytest.raises(TypeError, match="not a torch.utils.data.Dataset"):
        register_dataset(D.RecordIOWriter)

    @register_dataset
    class MyFaces(torch.utils.data.Dataset):
        def __init__(self, n):
            self.n = n

        def __len__(self):
            return self.n

    try:
        assert "MyFaces" in DATASETS.names("My*") and len(open_dataset({"type": "MyFaces", "n": 3})) == 3
    finally:
        DATASETS.unregister("MyFaces")


def test_heads_tasks_recipes_optimizers_list_and_suggest():
    assert set(HEADS.names("ssl_*")) == {"ssl_puzzle", "ssl_rotation", "ssl_puzzle_rotation", "ssl_image_rotation"}
    assert {"fr", "fld", "hpe", "eyeblink", "hopenet"} <= set(TASKS.names())
    assert {"mtl", "hmtl", "eyeblink"} <= set(RECIPES.names()) and {"sgd", "adamw", "adabelief"} <= set(OPTIMIZERS)
    with pytest.raises(ConfigError, match=r"^model\.tasks: unknown head 'fdl' \(did you mean 'fld'\?\)"):
        model_config(tasks=("fr", "fdl"))
    with pytest.raises(ConfigError, match=r"^recipe: unknown recipe 'mlt' \(did you mean 'mtl'"):
        resolve_config({"recipe": "mlt", "data": {"train": {}}})
    with pytest.raises(ConfigError, match=r"^tasks: unknown task 'hep' \(did you mean 'hpe'"):
        resolve_config({"tasks": ["fld", "hep"], "data": {"train": {}}})
    with pytest.raises(ConfigError, match=r"^optim\.name: unknown optimizer 'adamv' \(did you mean 'adamw'"):
        resolve_config({"optim": {"name": "adamv"}, "data": {"train": {}}})
    with pytest.raises(ConfigError, match=r"unknown model preset 'iresnet18-mult' \(did you mean 'iresnet18-multi'"):
        model_config("iresnet18-mult")
    with pytest.raises(ConfigError, match=r"^epochs: unknown key \(did you mean 'optim.epochs'\?\)$"):
        resolve_config({"epochs": 3, "data": {"train": {}}})


def test_dataset_spec_keys_follow_a_wrapper_to_the_class_it_configures():
    """SyntheticEyes passes its remaining keywords to SyntheticFaces: those are known
    keys (the label demo's validation set uses identity_offset), a misspelt one is not."""
    from pyface.data.spec import check_spec
    from pyface.errors import ConfigError

    spec = {"type": "SyntheticEyes", "num_identities": 3, "images_per_identity": 2}
    check_spec({**spec, "identity_offset": 5, "eye_closed_prob": 0.3})
    with pytest.raises(ConfigError, match=r"dataset\.identity_ofset: unknown key .*did you mean 'identity_offset'"):
        check_spec({**spec, "identity_ofset": 5})
