"""Self-supervised pieces of HMTL (Pourmirzaei et al.): tile puzzles/rotations of image
batches (the labels of the auxiliary heads) and the Barlow Twins loss. Layer: uses
pyface.ops only."""
from pyface.ssl.barlow import BARLOW_LAMBDA, barlow_twins_loss
from pyface.ssl.tiles import MODES, tile_transform, untile_transform

__all__ = ["BARLOW_LAMBDA", "MODES", "barlow_twins_loss", "tile_transform", "untile_transform"]
