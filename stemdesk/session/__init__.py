"""The session layer: what both front ends share."""
