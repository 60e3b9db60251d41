"""The facility gateway's edge agent."""
