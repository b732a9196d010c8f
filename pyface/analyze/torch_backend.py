"""The PyTorch model backend: any ``pyface train`` checkpoint (MTL, the FLD + HPE
pretraining net, HopeNet / HMTL, STL-FR) behind :class:`pyface.analyze.backend.ModelBackend`.

Loading, devices, the AMP policy and the input normalisation are the runtime's
(:func:`pyface.runtime.load_model`, :func:`pyface.runtime.forward`). A request for
some outputs runs the sub-network of the heads that give them
(:meth:`pyface.models.MultiTaskNet.export`: at their cost, e.g. only the FR branch for
the aligned crops). A HopeNet head's bin logits become angles as in ``pyface eval``
(the softmax expectation over the bin centres, :func:`pyface.nn.hopenet_angles`).
"""
from __future__ import annotations

import os

import numpy as np
import torch

from pyface import runtime
from pyface.analyze.backend import OUTPUTS, check_images
from pyface.errors import CheckpointError

__all__ = ["TorchBackend"]

#: Head output name -> the backend output it gives.
_GIVES = {"embedding": "embedding", "landmarks": "landmarks", "pose": "pose", "pose_logits": "pose"}


class TorchBackend:
    """A checkpoint (file, run folder or built MultiTaskNet) as a model backend.

    ``device``: :func:`pyface.runtime.resolve_device` (default: CUDA when available);
    ``amp``: the runtime's policy (True: fp16 on CUDA, fp32 on the CPU);
    ``batch_size``: crops per forward; ``crop_area``: the face-area framing the net
    expects (None: :func:`pyface.analyze.crops.training_crop_area`)."""

    def __init__(self, checkpoint, device=None, *, amp=True, batch_size: int = 64, crop_area: float | None = None,
                 what: str = "checkpoint"):
        self.model = runtime.load_model(checkpoint, device, what=what)
        self.device = next(self.model.parameters()).device
        self.amp, self.batch_size = amp, int(batch_size)
        runtime.amp_dtype(amp, self.device)
        self.path = getattr(self.model, "checkpoint_path", None)
        self._head_of = {}  # backend output -> head
        for head, out in self.model.outputs.items():
            if out in _GIVES:
                self._head_of.setdefault(_GIVES[out], head)
        self.outputs = frozenset(self._head_of) & OUTPUTS
        if not self.outputs:
            raise CheckpointError(f"{what}: {self.path or 'the given model'} has heads {list(self.model.tasks)}; "
                                  "none gives landmarks, a pose or a face embedding")
        self.input_size = int(self.model.config.input_size)
        if crop_area is None:
            from pyface.analyze.crops import training_crop_area

            crop_area, self.crop_area_source = training_crop_area(self.path, self.input_size)
        else:
            self.crop_area_source = "given"
        if not (np.isfinite(crop_area) and crop_area > 0):
            raise ValueError(f"crop_area must be a positive number, got {crop_area!r}")
        self.crop_area = float(crop_area)
        self._nets = {}

    def _net(self, heads: tuple[str, ...]):
        if tuple(sorted(heads)) == tuple(sorted(self.model.tasks)):
            return self.model
        key = tuple(sorted(heads))
        if key not in self._nets:
            self._nets[key] = self.model.export(key).eval()
        return self._nets[key]

    def predict(self, images: np.ndarray, outputs=None) -> dict[str, np.ndarray]:
        x = check_images(images, self.input_size)
        want = self.outputs if outputs is None else frozenset(outputs)
        unknown = want - self.outputs
        if unknown:
            raise ValueError(f"this model has no output(s) {sorted(unknown)} (it has {sorted(self.outputs)})")
        heads = tuple(sorted({self._head_of[o] for o in want}))
        net = self._net(heads)
        parts: dict[str, list] = {o: [] for o in want}
        for s in range(0, len(x), self.batch_size):
            out = runtime.forward(net, torch.from_numpy(x[s:s + self.batch_size]), amp=self.amp)
            for o in want:
                head_out = net.outputs[self._head_of[o]]
                v = out[head_out].float()
                if head_out == "pose_logits":
                    from pyface.nn import hopenet_angles
                    from pyface.nn.hopenet import ANGLE_RANGE

                    v = hopenet_angles(v, 2 * ANGLE_RANGE / v.shape[-1])  # as pyface.eval.runner
                parts[o].append(v.cpu().numpy().astype(np.float32))
        empty = {"landmarks": (0, 68, 2), "pose": (0, 3),
                 "embedding": (0, int(getattr(self.model.config, "embedding_dim", 0)))}
        return {o: np.concatenate(v) if v else np.zeros(empty[o], np.float32) for o, v in parts.items()}

    def describe(self) -> dict:
        from pyface.label.landmarks import weights_digest

        return {"backend": "torch", "checkpoint": os.path.abspath(self.path) if self.path else None,
                "weights_sha256": weights_digest(self.model), "input_size": self.input_size,
                "outputs": sorted(self.outputs), "tasks": list(self.model.tasks), "crop_area": self.crop_area,
                "crop_area_source": self.crop_area_source}
