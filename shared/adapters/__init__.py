"""Adapters: the only code that imports Azure SDKs. Each module is imported lazily by the
composition root (`shared.bootstrap`) the first time its capability is needed, so importing the
function app costs no SDK import."""
