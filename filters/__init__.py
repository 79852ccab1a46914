"""Filters: verifiers, answer parsing, dedup and (later) decontamination.

Each filter is a small `factory.stage.Filter` that keeps a record or drops it with a reason
code; counting and reject tables are handled once, in the base class.
"""
