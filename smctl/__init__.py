"""smctl: the operator's command line, against the local stack or a real AWS account.

It is not part of the Lambda layer: it is installed with the repository (`pip install -e .`)
and imports the package's stores and models like any other client of them. Commands are built
with click (`smctl.app` holds the root group; `smctl.commands` one module per group).
"""
