"""Exports: any amount of data, streamed through a format writer into S3 (SPEC §5)."""
