"""pyface: C++/CUDA-accelerated multitask face analysis (recognition, 68-point
landmarks, head pose) and the pseudo-labeling pipeline that builds its training set."""
__version__ = "0.1.0"
