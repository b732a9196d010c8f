"""Convert MediaPipe's short-range BlazeFace (face_detection_short_range.tflite, shipped
inside the mediapipe 0.10.21 wheel) to pyface/data_files/blazeface_short_range.npz, the
weights of the PyTorch port in pyface/analyze/blazeface.py.

One-off maintainer tool (the .npz is committed; nothing downloads at run time). Needs
mediapipe (the `label` extra) and the `tflite` package (the flatbuffer schema):

    pip install "pyface-mtl[label]" tflite==2.18.0
    python tools/convert_blazeface.py            # writes pyface/data_files/blazeface_short_range.npz

The weights are stored as the tflite file stores them (float16); every conv's kernel is
transposed from TFLite's OHWI (depthwise: 1HWC) to PyTorch's OIHW, keyed by the
tflite tensor name (conv2d_<k>, depthwise_conv2d_<k>, classificator_*, regressor_*).
MediaPipe's models are Apache-2.0 licensed (see the .npz's "license" entry).
"""
from __future__ import annotations

import argparse
import hashlib
import os

import numpy as np


def _tensor(model, g, idx):
    """(name, float array) of a constant tensor, following a DEQUANTIZE to its fp16 source."""
    t = g.Tensors(idx)
    buf = model.Buffers(t.Buffer()).DataAsNumpy()
    dtype = {0: np.float32, 1: np.float16}[t.Type()]
    return t.Name().decode(), np.frombuffer(buf.tobytes(), dtype=dtype).reshape(t.ShapeAsNumpy())


def convert(src: str, out: str) -> dict:
    import tflite

    data = open(src, "rb").read()
    model = tflite.Model.GetRootAsModel(data, 0)
    g = model.Subgraphs(0)
    codes = [model.OperatorCodes(i) for i in range(model.OperatorCodesLength())]
    names = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
    producer = {}  # dequantized tensor -> its fp16 constant
    weights = {}
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        c = codes[op.OpcodeIndex()]
        kind = names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())]
        ins, outs = op.InputsAsNumpy(), op.OutputsAsNumpy()
        if kind == "DEQUANTIZE":
            producer[int(outs[0])] = int(ins[0])
        elif kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            _, k = _tensor(model, g, producer.get(int(ins[1]), int(ins[1])))
            _, b = _tensor(model, g, producer.get(int(ins[2]), int(ins[2])))
            name = g.Tensors(int(outs[0])).Name().decode()
            # TFLite: conv OHWI, depthwise 1HWC -> PyTorch OIHW (depthwise: C,1,H,W)
            order = (3, 0, 1, 2) if kind == "DEPTHWISE_CONV_2D" else (0, 3, 1, 2)
            weights[f"{name}.weight"] = k.transpose(order)
            weights[f"{name}.bias"] = b
    sha = hashlib.sha256(data).hexdigest()
    np.savez_compressed(out, **weights, source=np.array(os.path.basename(src)), source_sha256=np.array(sha),
                        license=np.array("Apache-2.0 (MediaPipe, Google LLC): converted from the tflite model "
                                         "in the mediapipe 0.10.21 wheel by tools/convert_blazeface.py"))
    return {"tensors": len(weights), "sha256": sha, "out": out}


def main():
    import mediapipe

    default = os.path.join(os.path.dirname(mediapipe.__file__), "modules", "face_detection",
                           "face_detection_short_range.tflite")
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default=default)
    p.add_argument("--out", default=os.path.join(here, "..", "pyface", "data_files", "blazeface_short_range.npz"))
    a = p.parse_args()
    print(convert(a.src, os.path.normpath(a.out)))


if __name__ == "__main__":
    main()
