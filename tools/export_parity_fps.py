"""ONNX export: per-head parity with PyTorch (fp32) and throughput of ONNX Runtime beside
PyTorch, per preset -> bench/results/onnx-export-cpu.json.

Weights: the presets with trained-looking random weights (python_tests/test_export.py's
``randomize``: BatchNorm statistics off identity, heads at working output scales), so
every output depends on the input. Parity: max |ONNX Runtime - PyTorch| per output on
``--seeds`` random uint8 batches of 1 and 5 images from one dynamic-batch file.
Throughput: ``pyface.eval.runner.measure_fps`` with the ONNX runtimes interleaved
(PyTorch's forward of the whole checkpoint, PyTorch running the exported graph, ONNX
Runtime on the file), ONNX Runtime given PyTorch's thread count; median and IQR.

    python tools/export_parity_fps.py [--presets iresnet10-multi-64,...] [--repeats 10]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python_tests"))

from test_export import randomize  # noqa: E402  (one definition of the test weights)

from pyface import runtime  # noqa: E402
from pyface.analyze.onnx_backend import OnnxBackend  # noqa: E402
from pyface.eval.runner import measure_fps  # noqa: E402
from pyface.export.exporter import export_model, onnx_fps_runtimes, parity  # noqa: E402
from pyface.io import write_json_atomic  # noqa: E402
from pyface.models import build_model  # noqa: E402

DEFAULT = ("iresnet10-multi-64,resnet18-fld-hpe,resnet50-tiny-hopenet-64,iresnet18-multi,iresnet50-multi,"
           "resnet50-hopenet")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default=DEFAULT)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "onnx-export-cpu.json"))
    args = ap.parse_args()
    batches = tuple(int(b) for b in args.batches.split(","))
    res = {"device": runtime.device_name("cpu"), "torch": torch.__version__, "load_before": os.getloadavg(),
           "threads": torch.get_num_threads(), "presets": {}}
    import onnxruntime

    res["onnxruntime"] = onnxruntime.__version__
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            t0 = time.time()
            seeds = []
            for seed in range(args.seeds):
                model = randomize(build_model(preset), seed)
                ckpt = runtime.save_model(model, Path(tmp) / f"{preset}-{seed}.pt")
                path = Path(tmp) / f"{preset}-{seed}.onnx"
                export_model(ckpt, path, dynamic_batch=True, check=False)
                model = runtime.load_model(ckpt)
                seeds.append(parity(model, OnnxBackend(path, threads=torch.get_num_threads()).run, (1, 5),
                                    seed=seed))
            par = {k: {"max_abs": [s[k]["max_abs"] for s in seeds], "ref_max_abs": [s[k]["ref_max_abs"] for s in seeds],
                       "rel": [s[k]["max_abs"] / s[k]["ref_max_abs"] for s in seeds]} for k in seeds[0]}
            backend = OnnxBackend(path, threads=torch.get_num_threads())
            fps = measure_fps(model, "cpu", batch_sizes=batches, precisions=("fp32",), repeats=args.repeats,
                              warmup=2, max_seconds=60.0, others=onnx_fps_runtimes(model, backend, "cpu"))
            res["presets"][preset] = {"input_size": model.config.input_size, "heads": list(model.tasks),
                                      "params": model.parameter_counts()["total"], "parity": par, "fps": fps,
                                      "onnx_bytes": path.stat().st_size, "seconds": time.time() - t0}
            line = ", ".join(f"{k} {max(v['max_abs']):.2e} ({max(v['rel']):.1e} rel)" for k, v in par.items())
            print(f"{preset}: parity {line}")
            for r in fps:
                print(f"  batch {r['batch']:>2} {r['runtime']:>15}: {r['images_per_s']:8.1f} img/s "
                      f"(IQR {r['iqr']:.1f})")
    res["load_after"] = os.getloadavg()
    write_json_atomic(args.out, res)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
