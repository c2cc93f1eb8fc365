"""HTTP: the Assemblyline v4, IoTInsight and intel dialects over one FastAPI app."""
