"""The result schema: the report reads only declared fields (engine.results.RESULT_FIELDS); that every declared
field is written by some run is checked on the tour's results (tests/test_tour.py)."""
import ast
from pathlib import Path

import pytest

import transferkit.report as report
from transferkit.engine.results import RESULT_FIELDS, read_field


def _fields_read_by_the_report() -> set:
    found = set()
    for path in Path(report.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "read_field" and len(node.args) > 1:
                arg = node.args[1]
                assert isinstance(arg, ast.Constant), f"{path.name}:{node.lineno}: read a literal field path"
                found.add(arg.value)
    return found


def test_the_report_reads_only_declared_fields():
    read = _fields_read_by_the_report()
    assert read and read <= set(RESULT_FIELDS), sorted(read - set(RESULT_FIELDS))


def test_read_field_refuses_an_undeclared_path_and_reads_nested_ones():
    r = {"metrics": {"accuracy": 0.5, "cells": {"5-way 1-shot": {}}}}
    assert read_field(r, "metrics.accuracy") == 0.5 and read_field(r, "metrics.ece", 1) == 1
    with pytest.raises(KeyError, match="RESULT_FIELDS"):
        read_field(r, "metrics.harmonic_mean")
