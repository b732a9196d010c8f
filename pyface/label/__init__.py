"""pyface.label: the pseudo-labeling pipeline (Lee et al. 2024, Sec. 3.1)."""

from pyface.label.labeler import IMAGE_CAUSES, SAMPLE_CAUSES, Labeler, LabelResult, Validity

__all__ = ["Labeler", "LabelResult", "Validity", "SAMPLE_CAUSES", "IMAGE_CAUSES"]
