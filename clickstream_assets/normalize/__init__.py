"""analytics.js events -> Segment's warehouse tables as Arrow: reading blocks of lines, flattening
columns, naming and typing rules. Knows nothing of Dagster or of any warehouse."""
