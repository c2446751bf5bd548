"""jcdiag: the JumpCloud agent diagnostics collector."""
__version__ = "0.1.0"
