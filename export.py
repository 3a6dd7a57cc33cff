#!/usr/bin/env python
"""Thin entry point: `python export.py ...` is `fqvit-export export ...` (see fqvit_export/cli.py)."""
import sys

from fqvit_export.cli import export_main

if __name__ == "__main__":
    sys.exit(export_main())
