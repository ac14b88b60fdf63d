"""Running work: the device queues, the streaming separation engine, peaks for the views, and catalog batches
(locally or on a Ray cluster)."""
