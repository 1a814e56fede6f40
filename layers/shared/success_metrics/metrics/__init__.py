"""Success metrics: exactly-once aggregation at ingest, formulas, the metrics API, the digest."""
