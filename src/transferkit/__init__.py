"""transferkit: transfer learning for images."""
__version__ = "0.1.0"
