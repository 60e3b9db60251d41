"""Web pages for police, health, supervisors and facilities, served by the cloud app."""

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
