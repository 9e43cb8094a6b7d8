"""The package version (one place; the package face and every writer of a versioned file read it)."""
__version__ = "0.1.0"
