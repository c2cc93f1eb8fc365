"""Assay: files in, analysis results and threat intelligence out.

The few things a user imports live here::

    from assay import Client
    client = Client("http://127.0.0.1:8000", user="admin", apikey="KEY:SECRET")
"""

from __future__ import annotations

__version__ = "4.5.0.assay0.1"
__all__ = ["Client", "Job", "__version__"]


def __getattr__(name: str) -> object:
    if name == "Client":
        from assay.client import Client

        return Client
    if name == "Job":
        from assay.intel import Job

        return Job
    raise AttributeError(name)
