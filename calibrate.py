#!/usr/bin/env python
"""Thin entry point: `python calibrate.py ...` is `fqvit-export calibrate ...` (see fqvit_export/cli.py)."""
import sys

from fqvit_export.cli import calibrate_main

if __name__ == "__main__":
    sys.exit(calibrate_main())
