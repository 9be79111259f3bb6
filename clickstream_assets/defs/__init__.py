"""The Dagster layer: the per-customer asset factory, sensors, asset checks, resources, run
queue and instance settings. Thin adapters over the plain modules; `definitions.py` joins them."""
