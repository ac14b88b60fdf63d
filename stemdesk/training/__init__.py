"""StemDesk's trainer: data loading, sampling with augmentation, resumable training and model export.

Imports the core and io, never the app or the jobs.
"""
