"""The supervision loop (监管闭环): inspections and rectification, hazard and incident reports,
filings (备案) and their public disclosure (公示), fee standards against 普惠 caps, subsidies,
credit records and the annual report upward. Each module holds one concern and its queries; the
tables are in `tables.py` (migration 0100_supervision)."""
