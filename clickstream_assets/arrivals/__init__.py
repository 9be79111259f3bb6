"""Which hours changed: listing new files cheaply, the arrival queue, sensor ticks, shards of
customers. Plain logic; the Dagster sensor that drives it lives in `defs/sensors.py`."""
