"""Where raw events are read from: the local folder (embedded default) and S3."""
