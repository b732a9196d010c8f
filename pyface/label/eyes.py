"""AdjustUpperEyes (Lee et al. 2024, Alg. 1 l. 7, Fig. 4).

The landmark net was trained on 300W-LP, which has almost no closed eyes, so it draws
closed eyes open. With sigma = P(closed) of an eye from the eye-blink net, each
upper-lid point moves toward its lower-lid partner by sigma * (partner - point):

    eye 36-41: 37 -> 41, 38 -> 40;   eye 42-47: 43 -> 47, 44 -> 46   (0-based iBUG)

so sigma = 1 puts the upper lid on the lower lid and sigma = 0 leaves the points.
"""
from __future__ import annotations

import torch

__all__ = ["UPPER_LID", "LOWER_LID", "adjust_upper_eyes"]

UPPER_LID = ((37, 38), (43, 44))
LOWER_LID = ((41, 40), (47, 46))


def adjust_upper_eyes(landmarks: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """landmarks [..., 68, 2]; sigma [..., 2] P(closed) of eye 36-41 and eye 42-47 in [0, 1].
    Returns adjusted landmarks (a new tensor)."""
    if landmarks.shape[-2:] != (68, 2):
        raise ValueError(f"landmarks must be [..., 68, 2], got {list(landmarks.shape)}")
    if sigma.shape != landmarks.shape[:-2] + (2,):
        raise ValueError(f"sigma must be {list(landmarks.shape[:-2]) + [2]}, got {list(sigma.shape)}")
    out = landmarks.clone()
    for eye in range(2):
        up, low = list(UPPER_LID[eye]), list(LOWER_LID[eye])
        s = sigma[..., eye, None, None].to(landmarks.dtype)
        out[..., up, :] = landmarks[..., up, :] + s * (landmarks[..., low, :] - landmarks[..., up, :])
    return out
