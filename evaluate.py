#!/usr/bin/env python
"""Thin entry point: `python evaluate.py ...` is `fqvit-export evaluate ...` (see fqvit_export/cli.py)."""
import sys

from fqvit_export.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
