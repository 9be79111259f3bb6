"""clickstream_assets: Segment analytics.js events from S3 into per-customer warehouses."""

__version__ = "0.1.0"
