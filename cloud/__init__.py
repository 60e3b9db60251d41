"""The supervision cloud: ingest from the uplink broker, stores, alarms lifecycle and the web API."""
