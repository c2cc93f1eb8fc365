"""One module per application protocol; each parser takes payload bytes and returns plain dicts.

Parsers never raise on bad input: a message that cannot be read gives ``None``.
"""
