"""``pyface label fit-index-map``: learn MediaPipe's 468 -> 68 index map against the
landmark net on calibration images (Lee et al. 2024, Sec. 3.1.2, Fig. 5): every
non-mirrored view of every image gives one (mesh, net prediction) pair in original
pixels, and :func:`pyface.label.mediapipe.fit_index_map` picks, per iBUG point, the
vertex closest on average to the net."""
from __future__ import annotations

import numpy as np
import torch

from pyface.label import mediapipe as M
from pyface.label import views as V

__all__ = ["fit_index_map_on"]


def fit_index_map_on(dataset, labeler, out: str, limit: int = 2000, batch_size: int = 32) -> dict:
    """Fit on the first ``limit`` images of ``dataset`` with ``labeler``'s net, views and
    MediaPipe; write the map to ``out`` (JSON); returns statistics (samples, mean
    distance in face sizes of the default and the fitted map to the net)."""
    if labeler.net is None or labeler.mediapipe is None:
        raise ValueError("fit-index-map needs both --net and MediaPipe")
    views = tuple(v for v in labeler.views if not v.mirror) or (V.View(),)
    n = min(len(dataset), int(limit))
    if n == 0:
        raise ValueError("fit-index-map: the calibration dataset is empty")
    meshes, nets = [], []
    saved, labeler.views = labeler.views, views
    try:
        for s in range(0, n, batch_size):
            images = [dataset[i]["image"].permute(1, 2, 0).numpy().copy() for i in range(s, min(n, s + batch_size))]
            box = V.boxes_array(images)
            S = labeler.net.input_size
            A = V.view_matrices(box, views, S)
            lm, _ = labeler._run_net(labeler._render(images, A, S))
            nets.append(V.unmap_landmarks(lm.view(len(images), len(views), 68, 2), A, views, S).flatten(0, 1))
            S2 = labeler.mediapipe_size
            A2 = V.view_matrices(box, views, S2)
            mesh = torch.from_numpy(labeler.mediapipe.mesh468(labeler._render(images, A2, S2).numpy()))
            meshes.append(V.unmap_landmarks(mesh.view(len(images), len(views), M.NUM_MESH, 2), A2, views, S2)
                          .flatten(0, 1))
    finally:
        labeler.views = saved
    mesh, net = torch.cat(meshes).numpy(), torch.cat(nets).numpy()
    index_map = M.fit_index_map(mesh, net)
    ok = np.isfinite(mesh).all((1, 2)) & np.isfinite(net).all((1, 2))
    wh = net[ok].max(1) - net[ok].min(1)
    face = np.sqrt(wh[:, 0] * wh[:, 1])

    def err(m):
        return float((np.linalg.norm(M.to68(mesh[ok], m) - net[ok], axis=-1).mean(1) / face).mean())

    stats = {"images": n, "samples": int(ok.sum()), "views": len(views), "default_map_distance": err(None),
             "fitted_map_distance": err(index_map)}
    M.save_index_map(out, index_map, {"fitted_on": stats})
    return {**stats, "index_map": index_map}
