"""Photo in, faces out (issue 19). Model backends: :mod:`pyface.analyze.backend`
(interface), :mod:`pyface.analyze.onnx_backend` (ONNX Runtime, torch-free)."""
