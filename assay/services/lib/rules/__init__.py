"""The bundled YARA rule sets (one ``*.yar`` file per rule set, its stem the namespace).

A package only so that packaging ships the ``*.yar`` files as package data; it holds no code.
"""
