"""StemDesk: split finished songs into stems that null-sum back to the original."""

__version__ = "0.2.0"
