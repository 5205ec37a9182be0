"""The tvm-ncnn command (main.py); each command's own work in a module beside it."""

from .main import main

__all__ = ["main"]
