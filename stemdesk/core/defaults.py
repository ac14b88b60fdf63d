"""The separation defaults every front end shows in its help and settings, importable without torch."""

# Seconds of audio per segment when separating (the speed and memory of each length: docs/architecture.md). The
# validation scores are measured with the same length (stemdesk.training.validation.separate_song).
DEFAULT_SEGMENT_SECONDS = 20.0
# Seconds shared by neighbouring segments (at most a quarter of a segment), for separation and validation alike.
DEFAULT_OVERLAP_SECONDS = 2.0
