"""Analysis services: one module per service, all of the shape in :mod:`assay.services.base`."""
