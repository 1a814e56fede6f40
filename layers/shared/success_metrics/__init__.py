"""Success Metrics: the shared package behind every Lambda handler and the `smctl` tool."""

__version__ = "0.1.0"
