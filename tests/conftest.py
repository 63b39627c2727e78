"""Shared pytest setup. Helpers for namespaces and peers live in tests/helpers/
(importable as `helpers.*` because this directory is on sys.path)."""
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
