"""pyface.analyze: photo and video in, faces out (issue 19)."""
