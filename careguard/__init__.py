"""CareGuard: the command line and the glue that starts the whole system."""
