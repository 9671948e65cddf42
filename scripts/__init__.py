"""Developer entry points used by the Makefile and CI."""
