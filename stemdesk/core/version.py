"""StemDesk's version, written once: the package, the certificates, the command line and the app read it here (the
bottom layer, so that no layer reaches up to the root package for it)."""

__version__ = "0.3.0"
