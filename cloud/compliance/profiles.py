"""Jurisdiction profiles as data: the national defaults and the cities that override them.

Each requirement carries the text it comes from, so a finding can quote its source. A city
profile lists only what it changes; a city's floor may be lower than the national norm (济宁
writes 30 days of footage), and the profile says which one the platform checks there."""

from __future__ import annotations

from datetime import time
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from cloud.registry.records import ClassType


class Requirement(BaseModel):
    model_config = ConfigDict(frozen=True)
    value: float
    source: str


class ClimateSeason(BaseModel):
    """A stretch of the year, in local dates, with its temperature band; `start` may fall after
    `end` (a heating season runs over the new year)."""
    model_config = ConfigDict(frozen=True)
    name: str
    start: tuple[int, int] = Field(description="(month, day), inclusive")
    end: tuple[int, int] = Field(description="(month, day), inclusive")
    temperature_c: tuple[float, float]

    def holds(self, month: int, day: int) -> bool:
        md = (month, day)
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end


class ClimateRules(BaseModel):
    """Room climate against GB/T 18883; a reading outside its band must stay outside for
    `sustained_s` (all readings of that span) before it is a breach, so one gust does not alarm."""
    model_config = ConfigDict(frozen=True)
    seasons: tuple[ClimateSeason, ...]
    humidity_pct: tuple[float, float] = (30.0, 80.0)
    co2_ppm_max: float = 1000.0
    sustained_s: float = Field(default=900.0, gt=0)
    source: str


class CareRules(BaseModel):
    """卫生保健 rules: morning checks, symptom clusters, staff health certificates."""
    model_config = ConfigDict(frozen=True)
    timezone: str = "Asia/Shanghai"
    care_weekdays: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), description="Monday=0; days children attend")
    morning_check_by: str = Field(default="10:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
                                  description="local HH:MM; a check at this time still counts")

    @property
    def morning_deadline_time(self) -> time:
        return time.fromisoformat(self.morning_check_by)
    morning_check_source: str
    fever_c: float = Field(default=37.3, description="a check at or above this temperature counts as fever")
    cluster_window_h: float = 48.0
    cluster_threshold: int = 3
    cluster_source: str
    certificate_warning_days: int = 30
    certificate_source: str


class Profile(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    retention_days: Requirement
    arming_24h: Requirement = Field(description="value: heartbeats older than this many seconds mean nobody watches")
    children_areas_covered: Requirement = Field(description="value: camera.health older than this many seconds is unknown")
    drill_interval_days: Requirement
    class_size: dict[ClassType, Requirement]
    carer_ratio: dict[ClassType, Requirement] = Field(description="children per carer, at most")
    licence_warning_days: Requirement
    filing: Requirement
    climate: ClimateRules = Field(default_factory=lambda: NORTHERN_CLIMATE)
    care: CareRules = Field(default_factory=lambda: NATIONAL_CARE)
    places_per_1000_targets: dict[int, Requirement] = Field(
        default_factory=lambda: dict(NATIONAL_PLACES_TARGETS),
        description="year -> places (托位) per 1,000 residents to reach by the end of that year")


_GUIFAN = "托育机构管理规范（试行）"
_SHEZHI = "托育机构设置标准（试行）"
_CLASS_SIZE_TEXT = (f"{_SHEZHI}: 乳儿班（6-12个月）10人以下，托小班（12-24个月）15人以下，托大班（24-36个月）20人以下；"
                    "18个月以上可混合编班，每个班不超过18人")
_RATIO_TEXT = f"{_SHEZHI}: 保育人员与婴幼儿的比例，乳儿班不低于1:3，托小班不低于1:5，托大班不低于1:7"

_GB18883 = ("GB/T 18883-2022 室内空气质量标准: 温度 供暖季16-24℃、制冷季22-28℃，相对湿度30-80%，"
            "二氧化碳≤0.10%（1000 ppm）")
# Northern cities heat from 15 November to 15 March; a southern city lists its own seasons.
NORTHERN_CLIMATE = ClimateRules(
    seasons=(ClimateSeason(name="heating", start=(11, 15), end=(3, 15), temperature_c=(16.0, 24.0)),
             ClimateSeason(name="cooling", start=(3, 16), end=(11, 14), temperature_c=(22.0, 28.0))),
    source=_GB18883)

NATIONAL_CARE = CareRules(
    morning_check_source="托儿所幼儿园卫生保健工作规范: 做好每日晨午检，发现问题及时处理（CareGuard: 晨检于10:00前完成）",
    cluster_source=("托儿所幼儿园卫生保健工作规范: 发现传染病疑似病例及时报告（CareGuard: 同一班级48小时内3名及以上"
                    "幼儿出现相同症状，向卫生健康部门报警）"),
    certificate_source=f"{_GUIFAN}: 工作人员上岗前应当经健康检查合格，取得健康合格证明，每年进行一次健康检查",
)

NATIONAL_PLACES_TARGETS = {
    2025: Requirement(value=4.5, source="国家“十四五”规划纲要: 2025年每千人口拥有3岁以下婴幼儿托位数4.5个"),
}

NATIONAL = Profile(
    name="national",
    retention_days=Requirement(value=90, source=f"{_GUIFAN}: 监控录像资料保存期不少于90日"),
    arming_24h=Requirement(value=300, source=f"{_GUIFAN}: 监控报警系统确保24小时设防; GB 50394 5.2.3: 紧急报警装置应设置为不可撤防状态"),
    children_areas_covered=Requirement(value=600, source=f"{_GUIFAN}: 婴幼儿生活和活动区域应当全覆盖（视频监控）"),
    drill_interval_days=Requirement(
        value=31, source="CareGuard platform rule: 一键式报警每月与公安机关联动测试一次（测试报警送达接警中心）"),
    class_size={
        ClassType.INFANT: Requirement(value=10, source=_CLASS_SIZE_TEXT),
        ClassType.TODDLER: Requirement(value=15, source=_CLASS_SIZE_TEXT),
        ClassType.OLDER: Requirement(value=20, source=_CLASS_SIZE_TEXT),
        ClassType.MIXED: Requirement(value=18, source=_CLASS_SIZE_TEXT),
    },
    carer_ratio={
        ClassType.INFANT: Requirement(value=3, source=_RATIO_TEXT),
        ClassType.TODDLER: Requirement(value=5, source=_RATIO_TEXT),
        ClassType.OLDER: Requirement(value=7, source=_RATIO_TEXT),
        # The national text gives no figure for mixed classes (from 18 months): the 托小班 ratio applies.
        ClassType.MIXED: Requirement(value=5, source=_RATIO_TEXT + "（混龄班按托小班1:5执行）"),
    },
    licence_warning_days=Requirement(value=30, source="托育机构登记和备案办法（试行）: 卫生评价、消防、食品经营等许可须有效"),
    filing=Requirement(value=1, source="托育机构登记和备案办法（试行）: 托育机构应当向县级卫生健康部门备案"),
)

# A city's changes to the national profile, keyed by the city as the registry writes it.
CITY_OVERRIDES: dict[str, dict] = {
    "济宁市": {
        "retention_days": Requirement(
            value=30, source="济宁市婴幼儿照护服务工作方案（十四）: 实行24小时设防……监控录像资料保存30日以上"),
    },
}


def profile_for(city: Optional[str]) -> Profile:
    """The profile that applies in `city` (济宁 and 济宁市 name the same city)."""
    if city:
        key = city if city.endswith("市") else city + "市"
        override = CITY_OVERRIDES.get(key)
        if override:
            return NATIONAL.model_copy(update={"name": key, **override})
    return NATIONAL


def all_profiles() -> list[Profile]:
    return [NATIONAL] + [profile_for(city) for city in CITY_OVERRIDES]
