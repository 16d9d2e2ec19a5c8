"""The demo store: a synthetic home-and-lifestyle shop, replayed through the real API.

`generator.generate_shop` (pure) builds the catalog and a time-ordered stream of Segment
messages from a seeded model; `replay` sends them to a running server; `run` is the
`shopkeeper demo` command.
"""

# Measured on the project's 2-core machine while other test suites ran on it (load 5):
# 2,000 people (about 92,000 events) are generated, replayed and applied, server start
# included, in 23-30 s. See docs/demo.md.
DEFAULT_CUSTOMERS = 2000
DEFAULT_SEED = 1
