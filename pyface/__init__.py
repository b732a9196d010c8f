"""pyface: C++/CUDA-accelerated multitask face analysis (recognition, 68-point
landmarks, head pose) and the pseudo-labeling pipeline that builds its training set."""
__version__ = "0.1.0"


def __getattr__(name):
    # pyface.FaceAnalyzer without importing torch at "import pyface" (the CLI's --help stays light)
    if name == "FaceAnalyzer":
        from pyface.analyze.analyzer import FaceAnalyzer

        return FaceAnalyzer
    raise AttributeError(f"module 'pyface' has no attribute {name!r}")
