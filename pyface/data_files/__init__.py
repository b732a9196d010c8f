"""Small data tables shipped inside the package (pure Python literals, no imports), so
that every layer can read them: the mean 3D face (mean_shape_68)."""
