"""`python -m devstack.sink`: the sink on its own."""

from devstack.sink.server import main

main()
