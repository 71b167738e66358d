"""Command line: ``transferkit COMMAND --help``. Each module below registers its commands on ``app``."""
import importlib

from .app import app

COMMAND_MODULES = ("core", "choose", "tour", "export")


def _register():
    for mod in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{mod}")


def main():
    _register()
    app()


__all__ = ["app", "main"]
