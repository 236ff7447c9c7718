"""invnas: neural architecture search for CNNs that mix convolution and involution."""

__version__ = "0.1.0"
