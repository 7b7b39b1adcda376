"""Layers as objects: one class per layer kind, each with its settings (validated once), its
shape rule, initialisation, forward and backward passes and explicit Jacobians side by side.

Compose them with :class:`vecjac.Sequential`.
"""

from .activation import Activation
from .base import Layer
from .conv import Conv2d
from .dense import Dense, Flatten
from .pool import Pool2d

__all__ = ["Layer", "Conv2d", "Pool2d", "Activation", "Flatten", "Dense"]
