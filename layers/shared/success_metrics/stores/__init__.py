"""Storage: the modules that know a table's or bucket's keys, attribute shapes and pagination.

`batch` is the one batch helper every store uses for `BatchGetItem` and `BatchWriteItem`.
"""
