"""pyface.data: face datasets that all return the same sample dict, and transforms.

Example::

    import torch
    from pyface.data import SyntheticFaces, transforms as T

    aug = T.Compose([T.RandomFaceCrop(1.2, 2.5, 112), T.RandomHorizontalFlip(0.5),
                     T.ColorJitter(0.3, 0.3, 0.3, 0.02)])
    train = SyntheticFaces(num_identities=200, images_per_identity=20, seed=0, transform=aug)
    test = SyntheticFaces(50, 10, seed=0, identity_offset=200)   # disjoint identities
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=64)))
    batch["image"]      # uint8 [64, 3, 112, 112] RGB
    batch["landmarks"]  # float32 [64, 68, 2] (x, y) pixels, iBUG order
    batch["pose"]       # float32 [64, 3] (yaw, pitch, roll) degrees
    batch["identity"]   # int64 [64]

Readers of real data: :class:`W300LP` (300W-LP), :class:`RecordIOFaces` (insightface
``train.rec``), :class:`ImageFolderFaces` (VGGFace2 layout), :class:`ManifestDataset`
(the pseudo-labeled Parquet manifest). The sample contract is in
:mod:`pyface.data.sample`; bad samples raise :class:`DataError` or, with
``on_error="skip"``, are skipped, counted in ``dataset.skipped`` and warned about.
"""
from pyface.data import transforms
from pyface.data.eyes import EyeFolder, SyntheticEyes, eye_crops
from pyface.data.folder import ImageFolderFaces, write_image_folder
from pyface.data.manifest import (MANIFEST_SCHEMA, ManifestDataset, read_manifest, write_manifest,
                                  write_manifest_dataset)
from pyface.data.recordio import RecordIOFaces, RecordIOReader, RecordIOWriter, write_recordio
from pyface.data.sample import MIRROR_68, DataError, check_sample, make_sample, mirror_landmarks, mirror_pose
from pyface.data.spec import describe_spec, open_dataset
from pyface.data.synthetic import SyntheticFaces
from pyface.data.w300lp import W300LP, write_300wlp

__all__ = [
    "transforms", "ImageFolderFaces", "write_image_folder", "MANIFEST_SCHEMA", "ManifestDataset",
    "read_manifest", "write_manifest", "write_manifest_dataset", "RecordIOFaces", "RecordIOReader", "RecordIOWriter",
    "write_recordio", "MIRROR_68", "DataError", "check_sample", "make_sample", "mirror_landmarks", "mirror_pose",
    "W300LP", "write_300wlp", "SyntheticFaces", "EyeFolder", "SyntheticEyes", "eye_crops", "open_dataset", "describe_spec",
]
