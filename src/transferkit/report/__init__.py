"""Report: result records -> a self-contained HTML page and Markdown (reads results only)."""
from .render import build_report

__all__ = ["build_report"]
