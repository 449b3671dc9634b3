"""Errors raised by the network representation."""


class NetworkError(ValueError):
    """A network, its weights or a saved file is not what it claims to be."""


class NetworkShapeError(NetworkError):
    """A layer's input does not have the shape the layer needs."""
