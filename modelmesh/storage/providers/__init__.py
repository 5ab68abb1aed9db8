"""Storage providers, one module per `type` of storage config."""
