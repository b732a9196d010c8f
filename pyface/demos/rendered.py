"""Synthetic faces rendered once into memory, shared by the demos (and their tests)."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from pyface.procs import worker_init_fn
from pyface.train.sampling import collate

__all__ = ["TensorFaces", "render"]


class TensorFaces(Dataset):
    """Samples rendered once and held in memory; optional random horizontal flip
    (mirrors the landmarks with the iBUG map and negates yaw and roll)."""

    def __init__(self, samples: dict, flip: bool = False, num_identities: int | None = None):
        self.s, self.flip = samples, flip
        self.num_identities = num_identities

    def __len__(self):
        return len(self.s["image"])

    def __getitem__(self, i):
        flip = self.flip and bool(torch.rand(()) < 0.5)
        return self._take(torch.tensor([i]), torch.tensor([flip]))[0]

    def get_seeded_batch(self, indices: list[int], seeds: list[int]) -> list[dict]:
        """The samples ``__getitem__`` gives after ``torch.manual_seed(seed)``, for a whole
        batch at once (pyface.train.sampling.SeededDataset): the per-item Python work was
        a fifth of a training step of the demo net."""
        # the first draw of each item's seed, as torch.rand(()) after manual_seed(seed)
        flip = torch.tensor([self.flip and bool(torch.rand((), generator=torch.Generator().manual_seed(s)) < 0.5)
                             for s in seeds], dtype=torch.bool)
        return self._take(torch.as_tensor(indices, dtype=torch.int64), flip)

    def _take(self, idx: torch.Tensor, flip: torch.Tensor) -> list[dict]:
        """Samples ``idx``, those where ``flip`` is set mirrored (landmarks with the iBUG
        map, yaw and roll negated)."""
        img, lmk, pose = self.s["image"][idx], self.s["landmarks"][idx], self.s["pose"][idx]
        if flip.any():
            from pyface.data import mirror_landmarks, mirror_pose

            img[flip] = img[flip].flip(-1)
            lmk[flip] = mirror_landmarks(lmk[flip], img.shape[-1])
            pose[flip] = mirror_pose(pose[flip])
        ident = self.s["identity"][idx]
        return [{"image": img[k], "landmarks": lmk[k], "pose": pose[k], "identity": ident[k], "source": "synthetic"}
                for k in range(len(idx))]


def render(dataset, workers: int) -> dict:
    """All samples of ``dataset`` stacked into tensors (rendered with ``workers`` processes)."""
    loader = DataLoader(dataset, batch_size=256, num_workers=workers, collate_fn=collate,
                        worker_init_fn=worker_init_fn())
    parts = [b for b in loader]
    return {k: torch.cat([p[k] for p in parts]) for k in ("image", "landmarks", "pose", "identity")}
