"""One error type for every message that fails its contract, carrying a reason a log can name."""


class ContractError(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def describe_validation_error(exc) -> str:
    """Pydantic's errors as 'field: message; ...', so a log names what was wrong."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "<root>"
        parts.append(f"{loc}: {err.get('msg')}")
    return "; ".join(parts)
