"""retinagan: controlled generation of diabetic-retinopathy fundus images."""

__version__ = "0.1.0"
