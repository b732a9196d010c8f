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
(the pseudo-labeled Parquet manifest); test sets :class:`AFLW2000` (AFLW2000-3D) and
:class:`BIWI` (the FSA-Net ``.npz``), :class:`VerificationBin` (insightface ``.bin``),
:class:`IJBC` (IJB-C 1:1 meta + 5-point-aligned :class:`IJBCFaces`); :class:`ETHXGaze` (head
pose, one HDF5 file per subject; needs the ``xgaze`` extra, h5py). A config's ``{type: Name}``
names a class of :data:`DATASETS` (``@register_dataset``) and transforms of :data:`TRANSFORMS`
(``@register_transform``); nothing else. The sample contract is in
:mod:`pyface.data.sample`; bad samples raise :class:`DataError` or, with
``on_error="skip"``, are skipped, counted in ``dataset.skipped`` and warned about.
"""
from pyface.data import transforms
from pyface.data.aflw2000 import AFLW2000, write_aflw2000
from pyface.data.align import align_face, umeyama
from pyface.data.biwi import BIWI, write_biwi_npz
from pyface.data.ethxgaze import ETHXGaze, write_ethxgaze
from pyface.data.eyes import EyeFolder, SyntheticEyes, eye_crops
from pyface.data.folder import ImageFolderFaces, write_image_folder
from pyface.data.ijbc import IJBC, IJBCFaces, write_ijbc
from pyface.data.manifest import MANIFEST_SCHEMA, ManifestDataset, read_manifest, write_manifest, write_manifest_dataset
from pyface.data.recordio import RecordIOFaces, RecordIOReader, RecordIOWriter, write_recordio
from pyface.data.sample import MIRROR_68, DataError, check_sample, make_sample, mirror_landmarks, mirror_pose
from pyface.data.spec import DATASETS, describe_spec, open_dataset, register_dataset
from pyface.data.synthetic import SyntheticFaces
from pyface.data.transforms import TRANSFORMS, register_transform
from pyface.data.verification_bin import VerificationBin, read_bin, write_bin
from pyface.data.w300lp import W300LP, write_300wlp

__all__ = [
    "transforms", "ImageFolderFaces", "write_image_folder", "MANIFEST_SCHEMA", "ManifestDataset",
    "read_manifest", "write_manifest", "write_manifest_dataset", "RecordIOFaces", "RecordIOReader", "RecordIOWriter",
    "write_recordio", "MIRROR_68", "DataError", "check_sample", "make_sample", "mirror_landmarks", "mirror_pose",
    "W300LP", "write_300wlp", "SyntheticFaces", "AFLW2000", "write_aflw2000", "BIWI", "write_biwi_npz",
    "IJBC", "IJBCFaces", "write_ijbc", "VerificationBin", "read_bin", "write_bin", "align_face", "umeyama",
    "ETHXGaze", "write_ethxgaze",
    "EyeFolder", "SyntheticEyes", "eye_crops", "open_dataset", "describe_spec", "DATASETS", "register_dataset",
    "TRANSFORMS", "register_transform",
]
