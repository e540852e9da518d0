"""The core package: a pure domain, services (one per use case), ports, adapters, settings and the
composition root. Only `shared.adapters` imports Azure SDKs, and only when first used."""
