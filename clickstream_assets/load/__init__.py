"""One load of a window: store -> normalizer -> warehouse, its progress and the checks that judge
it. Plain modules the Dagster layer (`defs/`) and the CLI both call."""
