"""Services: the use cases. They depend on ports, never on SDKs, and raise the domain's errors."""
