"""MediaPipe's short-range BlazeFace face detector as a PyTorch module: the detector
that needs no extra.

The network, its anchors and its post-processing are MediaPipe's
(``face_detection_short_range.tflite`` and the ``face_detection_short_range`` graph of
mediapipe 0.10.21): a 128 x 128 letterboxed RGB input scaled to [-1, 1], a stem
convolution and 16 depthwise-separable residual blocks, two detection heads (16 x 16
cells x 2 anchors, 8 x 8 cells x 6 anchors: 896 anchors), boxes and six key points
decoded against fixed-size SSD anchors, sigmoid scores, and MediaPipe's *weighted*
non-maximum suppression (overlapping boxes averaged by score). The weights are those of
the tflite file (float16), converted once by ``tools/convert_blazeface.py`` into
``pyface/data_files/blazeface_short_range.npz`` (Apache-2.0, MediaPipe); nothing is
downloaded. Parity with MediaPipe itself is tested where the ``label`` extra is
installed (python_tests/test_analyze_detectors.py).

Short range means faces that fill a good part of the picture (selfies, portraits,
within ~2 m of the camera); the ``mediapipe-full`` detector (``label`` extra) finds
smaller faces.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlazeFaceNet", "BlazeFace", "KEYPOINTS", "anchors", "decode", "weighted_nms", "WEIGHTS"]

#: The converted weights (tools/convert_blazeface.py).
WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data_files",
                       "blazeface_short_range.npz")
#: MediaPipe's key points, in its order; "right"/"left" are the subject's (the right eye
#: is on the image's left in an unmirrored photo).
KEYPOINTS = ("right_eye", "left_eye", "nose_tip", "mouth_centre", "right_ear_tragion", "left_ear_tragion")
INPUT = 128
#: (in, out, stride) of the residual blocks; the first 11 end at 16 x 16 (the first head).
BLOCKS = ((24, 24, 1), (24, 28, 1), (28, 32, 2), (32, 36, 1), (36, 42, 1), (42, 48, 2), (48, 56, 1), (56, 64, 1),
          (64, 72, 1), (72, 80, 1), (80, 88, 1), (88, 96, 2), (96, 96, 1), (96, 96, 1), (96, 96, 1), (96, 96, 1))
_HEAD16_AFTER = 10


def _conv(cin, cout, k, stride=1, groups=1):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=0, groups=groups)


class BlazeFaceNet(nn.Module):
    """The short-range network: float [B, 3, 128, 128] in [-1, 1] -> (regressors
    [B, 896, 16], classificators [B, 896, 1] logits), the tflite model's outputs.
    Layers are named after the tflite tensors (``conv2d_<k>``, ...) so the converted
    weights load by name. TensorFlow's "SAME" padding is explicit (asymmetric at
    stride 2)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleDict({"conv2d": _conv(3, 24, 5, 2)})
        for k, (cin, cout, s) in enumerate(BLOCKS):
            self.layers[f"depthwise_conv2d{'_' + str(k) if k else ''}"] = _conv(cin, cin, 3, s, groups=cin)
            self.layers[f"conv2d_{k + 1}"] = _conv(cin, cout, 1)
        for name, cin, cout in (("classificator_8", 88, 2), ("classificator_16", 96, 6), ("regressor_8", 88, 32),
                                ("regressor_16", 96, 96)):
            self.layers[name] = _conv(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        L = self.layers
        x = F.relu(L["conv2d"](F.pad(x, (1, 2, 1, 2))))  # SAME, 5x5, stride 2
        feat16 = None
        for k, (cin, cout, s) in enumerate(BLOCKS):
            dw = L[f"depthwise_conv2d{'_' + str(k) if k else ''}"]
            h = dw(F.pad(x, (0, 1, 0, 1) if s == 2 else (1, 1, 1, 1)))  # SAME, 3x3
            h = L[f"conv2d_{k + 1}"](h)
            skip = F.max_pool2d(x, 2) if s == 2 else x
            if cout > cin:
                skip = F.pad(skip, (0, 0, 0, 0, 0, cout - cin))  # zero channels appended
            x = F.relu(h + skip)
            if k == _HEAD16_AFTER:
                feat16 = x
        b = x.shape[0]

        def flat(t, n):  # NCHW -> [B, H * W * anchors, n] in TFLite's (y, x, anchor) order
            return t.permute(0, 2, 3, 1).reshape(b, -1, n)

        reg = torch.cat([flat(L["regressor_8"](feat16), 16), flat(L["regressor_16"](x), 16)], 1)
        cls = torch.cat([flat(L["classificator_8"](feat16), 1), flat(L["classificator_16"](x), 1)], 1)
        return reg, cls

    @classmethod
    def pretrained(cls, path: str = WEIGHTS) -> "BlazeFaceNet":
        net = cls()
        with np.load(path) as d:
            state = {f"layers.{k}": torch.from_numpy(d[k].astype(np.float32)) for k in d.files if "." in k}
        net.load_state_dict(state)
        return net.eval()


def anchors() -> np.ndarray:
    """[896, 2] anchor centres in [0, 1] (x, y): MediaPipe's SSD anchors of the short-range
    model (strides 8, 16, 16, 16; fixed size 1; 2 anchors per 16 x 16 cell, then 6 per
    8 x 8 cell; offset 0.5), in the heads' (y, x, anchor) order."""
    out = []
    for cells, per in ((16, 2), (8, 6)):
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        c = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(c, per, axis=0))
    return np.concatenate(out).astype(np.float64)


_ANCHORS = anchors()


def decode(reg: np.ndarray, logits: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw outputs [896, 16], [896] -> (boxes [N, 4] x0, y0, x1, y1, scores
    [N], key points [N, 6, 2]) in [0, 1] input coordinates, for anchors scoring at least
    ``min_score`` (sigmoid of the logit clipped to +-100, as MediaPipe)."""
    score = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -100.0, 100.0)))
    keep = np.nonzero(score >= min_score)[0]
    r = reg[keep].astype(np.float64) / INPUT
    a = _ANCHORS[keep]
    cx, cy = r[:, 0] + a[:, 0], r[:, 1] + a[:, 1]
    w, h = r[:, 2], r[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
    kps = r[:, 4:16].reshape(-1, 6, 2) + a[:, None, :]
    return boxes, score[keep], kps


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda b: np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def weighted_nms(boxes, scores, kps, threshold: float = 0.3):
    """MediaPipe's weighted non-maximum suppression: the best remaining detection and
    every remaining one overlapping it by IoU > ``threshold`` become one detection whose
    box and key points are their score-weighted mean and whose score is the best's."""
    order = np.argsort(-scores, kind="stable")
    boxes, scores, kps = boxes[order], scores[order], kps[order]
    out_b, out_s, out_k = [], [], []
    remaining = np.arange(len(scores))
    while len(remaining):
        top = remaining[0]
        sim = _iou(boxes[top], boxes[remaining])
        group = remaining[sim > threshold]
        group = group if len(group) else np.array([top])
        w = scores[group][:, None]
        out_b.append((boxes[group] * w).sum(0) / w.sum())
        out_k.append((kps[group] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[top])
        remaining = remaining[~(sim > threshold)]
        remaining = remaining[remaining != top]
    if not out_s:
        return np.zeros((0, 4)), np.zeros(0), np.zeros((0, 6, 2))
    return np.stack(out_b), np.array(out_s), np.stack(out_k)


class BlazeFace:
    """HxWx3 uint8 RGB image -> (boxes [N, 4] pixels x0, y0, x1, y1, scores [N], key
    points [N, 6, 2] pixels, :data:`KEYPOINTS`), MediaPipe's short-range pipeline:
    letterbox to 128 x 128, the net, decode, weighted NMS (IoU 0.3), letterbox removed.
    ``min_score``: MediaPipe's ``min_detection_confidence`` (0.5)."""

    def __init__(self, min_score: float = 0.5, nms_threshold: float = 0.3, device="cpu"):
        self.min_score, self.nms_threshold = float(min_score), float(nms_threshold)
        self.device = torch.device(device)
        self.net = BlazeFaceNet.pretrained().to(self.device)

    @staticmethod
    def letterbox(image: np.ndarray) -> tuple[np.ndarray, float, float, float]:
        """(128 x 128 x 3 uint8 input, scale, pad_x, pad_y): the image scaled to fit and
        centred on black, input pixel = image pixel * scale + pad (continuous pixels)."""
        h, w = image.shape[:2]
        s = INPUT / max(h, w)
        px, py = (INPUT - w * s) / 2, (INPUT - h * s) / 2
        m = np.array([[s, 0, px + 0.5 * s - 0.5], [0, s, py + 0.5 * s - 0.5]])  # integer-centre matrix
        src = image
        if s < 0.5:  # area-average first, as the other warps of pyface do (no aliasing)
            f = 2 * s
            src = cv2.resize(image, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)
            sx, sy = w / src.shape[1], h / src.shape[0]
            m = np.array([[s * sx, 0, px + 0.5 * s * sx - 0.5], [0, s * sy, py + 0.5 * s * sy - 0.5]])
        x = cv2.warpAffine(src, m, (INPUT, INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(0, 0, 0))
        return x, s, px, py

    @torch.no_grad()
    def __call__(self, image: np.ndarray):
        x, s, px, py = self.letterbox(image)
        t = torch.from_numpy(x).permute(2, 0, 1)[None].float().to(self.device) * (2.0 / 255.0) - 1.0
        reg, cls = self.net(t)
        boxes, scores, kps = decode(reg[0].cpu().numpy(), cls[0, :, 0].cpu().numpy(), self.min_score)
        boxes, scores, kps = weighted_nms(boxes, scores, kps, self.nms_threshold)
        pad = np.array([px, py])
        boxes = (boxes.reshape(-1, 2, 2) * INPUT - pad) / s
        kps = (kps * INPUT - pad) / s
        return boxes.reshape(-1, 4), scores, kps
