"""Where raw events are read from, chosen by URL like warehouses: the local folder (embedded
default) and S3. Importing the package registers every store."""

from clickstream_assets.stores import local_event_store, s3_event_store  # noqa: F401 - registers
from clickstream_assets.stores.event_store import (
    EventFile,
    EventStore,
    event_store_from_url,
    register_store,
)
from clickstream_assets.stores.local_event_store import LocalEventStore
from clickstream_assets.stores.s3_event_store import S3EventStore

__all__ = ["EventFile", "EventStore", "LocalEventStore", "S3EventStore", "event_store_from_url",
           "register_store"]
