"""The local stack: runs the whole system on one machine from template.yaml, over moto server."""
