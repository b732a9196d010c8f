"""``pyface export``."""
from __future__ import annotations

import json

from pyface.cli.command import Command, command, existing_path, positive_int

FORMATS = ("onnx", "onnx-dynamo", "torch-export")  # pyface.export.EXPORT_FORMATS, spelt out: importing it imports torch


@command
class Export(Command):
    name = "export"
    help = "export a checkpoint's inference net (ONNX or torch.export), preprocessing in its metadata"
    description = """Export a checkpoint's inference net to one self-describing file.

The graph takes uint8 RGB images [B, 3, S, S] (S = the checkpoint's input size; the
normalisation (x - 127.5) / 128 is inside) and gives float32 "embedding" (one pass; pyface
eval's flip-sum adds the mirror image's), "landmarks" (pixels of the S x S input) and
"pose" (yaw, pitch, roll degrees; HopeNet bin logits are turned into angles in the graph). Input size, normalisation,
channel order, heads and outputs are in the file's metadata. After writing, the file is
run beside PyTorch and the largest difference per output is printed.

Examples::

    pyface export --checkpoint run/model.pt --format onnx --dynamic-batch --out model.onnx
    pyface export --checkpoint run/model.pt --heads fr --out fr.onnx        # recognition only
    pyface export --checkpoint run/model.pt --format torch-export --out model.pt2
"""

    def add_arguments(self, p):
        p.add_argument("--checkpoint", required=True, help="model.pt, checkpoints/last.pt or a pyface train run folder")
        p.add_argument("--format", choices=FORMATS, default="onnx",
                       help="onnx (default; torch.onnx's TorchScript-based exporter), onnx-dynamo (torch.onnx's "
                            "torch.export-based exporter, needs onnxscript) or torch-export (.pt2)")
        p.add_argument("--out", required=True, help="file to write (e.g. model.onnx)")
        p.add_argument("--heads", default=None,
                       help="heads to keep, comma-separated (e.g. fr,fld,hpe; default: every inference head)")
        p.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: fixed --batch-size)")
        p.add_argument("--batch-size", type=positive_int, default=1, help="the fixed batch size (default 1)")
        p.add_argument("--opset", type=positive_int, default=17, help="ONNX opset (default 17)")
        p.add_argument("--no-verify", action="store_true", help="skip running the written file beside PyTorch")

    def run(self, args) -> int:
        existing_path("--checkpoint", args.checkpoint, "checkpoint")
        from pyface.export.exporter import export_model

        r = export_model(args.checkpoint, args.out, format=args.format, heads=args.heads,
                         dynamic_batch=args.dynamic_batch, batch_size=args.batch_size,
                         opset=args.opset, check=not args.no_verify)
        s, outs = r.props["input_size"], ", ".join(json.loads(r.props["outputs"]))
        print(f"wrote {r.path} ({r.format}; heads {r.props['heads']}; input uint8 RGB "
              f"[{r.props['batch']}, 3, {s}, {s}]; outputs {outs})")
        for k, d in (r.parity or {}).items():
            print(f"  {k:>10}: max |exported - PyTorch| = {d['max_abs']:.3g} (largest value {d['ref_max_abs']:.3g}; "
                  f"batches {d['batches']})")
        return 0
