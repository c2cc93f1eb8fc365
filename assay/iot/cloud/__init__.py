"""Cloud accounts of smart-home devices: collectors, offline importers and the bundle analyser.

An examiner collects an account (live, with a credential they supply) or imports saved data,
gets a credential-free JSON *bundle*, and submits it; the ``CloudAccount`` service turns it
into a device inventory and a timeline.

Example::

    from assay.iot.cloud import bundle_bytes, collect_smartthings
    Path("account.json").write_bytes(bundle_bytes(collect_smartthings(token)))
"""

from assay.iot.cloud.alexa import collect_alexa
from assay.iot.cloud.alexa_scrape import import_alexa_scrape
from assay.iot.cloud.bundle import bundle_bytes, load_bundle
from assay.iot.cloud.http import CollectorError, FetchLimits
from assay.iot.cloud.inventory import analyse_bundle
from assay.iot.cloud.saved import ImportLimits, import_saved_responses
from assay.iot.cloud.smartthings import collect_smartthings

__all__ = [
    "CollectorError",
    "FetchLimits",
    "ImportLimits",
    "analyse_bundle",
    "bundle_bytes",
    "collect_alexa",
    "collect_smartthings",
    "import_alexa_scrape",
    "import_saved_responses",
    "load_bundle",
]
