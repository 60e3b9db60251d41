"""Words the supervision workflows share with the jurisdiction profiles and the public pages."""

from __future__ import annotations

from enum import Enum


class ServiceType(str, Enum):
    """Service types a facility offers (晋宁: 全日托、半日托、计时托、临时托)."""
    FULL_DAY = "full_day"    # 全日托, fee per child and month
    HALF_DAY = "half_day"    # 半日托, fee per child and month
    HOURLY = "hourly"        # 计时托, fee per hour
    TEMPORARY = "temporary"  # 临时托, fee per day


SERVICE_TYPE_ZH = {ServiceType.FULL_DAY: "全日托", ServiceType.HALF_DAY: "半日托", ServiceType.HOURLY: "计时托",
                   ServiceType.TEMPORARY: "临时托"}
# The unit a fee standard of each service type is quoted in.
FEE_UNIT_ZH = {ServiceType.FULL_DAY: "元/人/月", ServiceType.HALF_DAY: "元/人/月", ServiceType.HOURLY: "元/小时",
               ServiceType.TEMPORARY: "元/天"}
