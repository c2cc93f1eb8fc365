"""Archive readers used by the Extract service, one module per format family.

Each reader walks one archive level and hands every member to a :class:`~.sink.Sink`, which
writes it under the work directory while enforcing the limits of :mod:`.limits`. Readers
record what they could not do in an :class:`~.limits.Extraction`; they never raise for a
hostile or broken archive.
"""
