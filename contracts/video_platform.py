"""The gateway's standing with the police video platform (GB/T 28181), as its heartbeat reports
it under `gb28181`: the edge writes it, the pages and the compliance rules read it."""

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.ids import CameraId

GB_ID_RE = r"^[0-9]{20}$"


class VideoPlatformStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    registered: bool
    platform: str = Field(max_length=300, description="host:port of the platform's SIP server")
    platform_id: str = Field(pattern=GB_ID_RE)
    device_id: str = Field(pattern=GB_ID_RE, description="the gateway's code on the platform")
    transport: Literal["udp", "tcp"]
    since: str = Field(max_length=40, description="UTC time the registration last changed state")
    reason: str = Field(max_length=300, description="why it is in that state: 'registered', or what failed")
    cameras: list[CameraId] = Field(default_factory=list, max_length=1024,
                                    description="cameras networked with the platform (each a GB/T 28181 channel)")
    streams: int = Field(ge=0, description="live streams to the platform now")


def read_video_platform(heartbeat: dict) -> Optional[VideoPlatformStatus]:
    """The `gb28181` section of a heartbeat body; None when absent or malformed (a gateway that
    does not report it is, for the reader, not networked)."""
    section = heartbeat.get("gb28181")
    if not isinstance(section, dict):
        return None
    try:
        return VideoPlatformStatus.model_validate(section)
    except ValidationError:
        return None
