"""The compliance engine: pure functions from facts and a proposed contact to a Decision.

See docs/compliance.md and the rule catalog each rule cites. Nothing here reads a clock,
a database or the network.
"""
