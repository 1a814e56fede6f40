"""`make run` entry point."""

print("local stack: see next issue")
