"""MicroPi edge device: a Wyoming voice satellite that reaches its owner's hosted Home Assistant."""

__version__ = "0.1.0"
