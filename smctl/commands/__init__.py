"""One module per command group; `smctl.app` adds them to the root group."""
