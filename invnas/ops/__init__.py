"""Involution: the functional op, the Involution2d layer, and their backends."""

from invnas.ops.functional import available_backends, involution
from invnas.ops.involution2d import Involution2d

__all__ = ["Involution2d", "available_backends", "involution"]
