"""Guest images; `build_tiny` makes the tiny test guest from Debian packages."""

from corral.image.tiny import ImageBuildError, build_tiny

__all__ = ["ImageBuildError", "build_tiny"]
