"""The Assemblyline v4 dialect: routes the unmodified ``assemblyline-client`` speaks to."""
