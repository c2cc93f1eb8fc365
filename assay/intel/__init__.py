"""Threat-intelligence store: owners, indicators, groups, associations, and the TcEx-style Jobs API.

from assay.intel import Job
job = Job(owner="Example Org")
job.indicator({"summary": "1.1.1.1", "type": "Address", "rating": 3})
result = job.process()
"""

from assay.intel.job import Job, JobSettings
from assay.intel.result import JobResult

__all__ = ["Job", "JobResult", "JobSettings"]
