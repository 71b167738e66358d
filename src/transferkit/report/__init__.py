"""Report: result records -> a self-contained HTML page and Markdown (reads results only)."""
from .render import build_report, summary_rows

__all__ = ["build_report", "summary_rows"]
