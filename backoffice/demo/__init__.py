"""Demo data for development, the demo run and tests: not a service, nothing at run time imports it."""
