"""pyface.label: the pseudo-labeling pipeline (Lee et al. 2024, Sec. 3.1)."""
