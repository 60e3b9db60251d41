"""Jurisdiction profiles as data: the national defaults and the cities that override them.

Each requirement carries the text it comes from, so a finding can quote its source. A city
profile lists only what it changes; a city's floor may be lower than the national norm (济宁
writes 30 days of footage), and the profile says which one the platform checks there."""

from __future__ import annotations

from datetime import time
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field

from cloud.registry.records import ClassType
from cloud.supervision.vocabulary import ServiceType


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


class ChecklistItem(BaseModel):
    """One line of an inspection checklist (督导检查表), with the text that asks for it."""
    model_config = ConfigDict(frozen=True)
    item_id: str = Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")
    area: str = Field(description="消防、安全、饮食、卫生保健、保育规范、收费价格、安防联网、信息公示")
    text: str
    source: str


class FeeCaps(BaseModel):
    """普惠 fee caps per class type, in 元 per child and month, for the monthly service types; a
    facility of a 普惠 kind charging more is in breach. `districts`: where the caps hold (None:
    the whole city)."""
    model_config = ConfigDict(frozen=True)
    monthly_yuan: dict[ClassType, Requirement]
    service_types: tuple[ServiceType, ...] = (ServiceType.FULL_DAY, ServiceType.HALF_DAY)
    districts: Optional[tuple[str, ...]] = None

    def applies_in(self, district: str) -> bool:
        return self.districts is None or district in self.districts


class SubsidyRates(BaseModel):
    """Construction: per new place, once the places passed acceptance (验收). Operation: per
    enrolled child and year by class type, for filed 普惠 facilities."""
    model_config = ConfigDict(frozen=True)
    construction_per_place: Requirement
    operation_per_child_year: dict[ClassType, Requirement]


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
    video_networked: Requirement = Field(default_factory=lambda: VIDEO_NETWORKED,
                                         description="value 1: registered (GB/T 28181) with children's cameras as channels")
    climate: ClimateRules = Field(default_factory=lambda: NORTHERN_CLIMATE)
    care: CareRules = Field(default_factory=lambda: NATIONAL_CARE)
    places_per_1000_targets: dict[int, Requirement] = Field(
        default_factory=lambda: dict(NATIONAL_PLACES_TARGETS),
        description="year -> places (托位) per 1,000 residents to reach by the end of that year")
    checklist: tuple[ChecklistItem, ...] = Field(default_factory=lambda: NATIONAL_CHECKLIST,
                                                 description="what an inspection (督导检查) covers here")
    fee_caps: Optional[FeeCaps] = Field(default=None, description="普惠 fee caps; none where the city sets none")
    subsidies: Optional[SubsidyRates] = Field(default=None, description="subsidy rates; none where none are set")


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

VIDEO_NETWORKED = Requirement(
    value=1, source="济宁市婴幼儿照护服务工作方案（十四）: 安装一键式报警器和视频监控系统并与公安机关、智慧云平台联网; "
                      "昆明市晋宁区实施方案: 监控器材安装检测和联网布控（联网方式: GB/T 28181-2016，注册在公安视频图像信息平台）")

NATIONAL_PLACES_TARGETS = {
    2025: Requirement(value=4.5, source="国家“十四五”规划纲要: 2025年每千人口拥有3岁以下婴幼儿托位数4.5个"),
}

_ZHUZHOU = "株洲市人民政府办公室关于促进3岁以下婴幼儿照护服务发展的实施意见（株政办发〔2022〕23号）"
_JINING = "济宁市婴幼儿照护服务工作方案"
_ZHUZHOU_AREAS = (f"{_ZHUZHOU}: 定期对婴幼儿照护服务机构进行综合监督检查工作，重点检查消防、安全、饮食、卫生保健、"
                  "保育规范、收费价格等方面情况")


def _item(item_id: str, area: str, text: str, source: str) -> ChecklistItem:
    return ChecklistItem(item_id=item_id, area=area, text=text, source=source)


# The national list covers the six areas 株洲 names (every plan asks for the same inspections);
# a city adds what its own plan asks beyond them.
NATIONAL_CHECKLIST = (
    _item("fire.passages", "消防", "疏散通道、安全出口畅通，消防设施器材完好有效", _ZHUZHOU_AREAS),
    _item("fire.acceptance", "消防", "消防验收或备案手续齐全", _ZHUZHOU_AREAS),
    _item("safety.daily_checks", "安全", "建立日常检查制度，安全隐患排查有记录",
          "九江市柴桑区促进3岁以下婴幼儿照护服务发展的实施方案: 完善落实安全管理制度，配备安全设施、器材和安保人员，"
          "建立日常检查制度"),
    _item("safety.alarm_video", "安全", "一键式报警和视频监控覆盖婴幼儿生活和活动区域并正常运行",
          f"{_GUIFAN}: 婴幼儿生活和活动区域应当全覆盖（视频监控）"),
    _item("safety.hazard_reporting", "安全", "安全隐患排查、事故报告制度落实",
          "昆明市晋宁区促进3岁以下婴幼儿照护服务发展的实施方案: 建立安全隐患排查、事故查处通报、责任追究制度和措施"),
    _item("food.licence", "饮食", "提供餐饮服务的，取得食品经营许可且在有效期内",
          "福州市鼓楼区关于促进3岁以下婴幼儿照护服务的实施意见: 提供餐饮服务（开办食堂）的，还应取得食品经营许可"),
    _item("food.hygiene", "饮食", "食品采购、加工、留样符合要求", _ZHUZHOU_AREAS),
    _item("health.checks", "卫生保健", "晨午检和全日健康观察有记录", NATIONAL_CARE.morning_check_source),
    _item("health.staff_certificates", "卫生保健", "工作人员持有效健康合格证明", NATIONAL_CARE.certificate_source),
    _item("care.class_size", "保育规范", "班级规模和保育人员配比符合设置标准", _CLASS_SIZE_TEXT),
    _item("care.records", "保育规范", "保育照护记录完整，作息安排合理", _ZHUZHOU_AREAS),
    _item("fees.published", "收费价格", "收费项目和标准明码标价并向社会公示",
          "昆明市晋宁区促进3岁以下婴幼儿照护服务发展的实施方案: 营利性婴幼儿照护服务机构收费标准实行市场调节……"
          "明码标价并向社会公示"),
)

_JINING_CHECKLIST = NATIONAL_CHECKLIST + (
    _item("jining.disclosure", "信息公示", "经营场所公示法人登记证明、备案回执、食品经营许可证、收费标准及从业人员健康证明",
          f"{_JINING}（十二）: 婴幼儿照护服务机构应当在经营场所对法人登记证明、备案回执、食品经营许可证、"
          "收费标准及从业人员健康证明等信息进行公示"),
    _item("jining.police_link", "安防联网", "24小时设防，一键式报警器和视频监控系统与公安机关、智慧云平台联网",
          f"{_JINING}（十四）: 实行24小时设防，一键式报警器和视频监控系统与公安机关、智慧云平台联网"),
    _item("jining.fee_cap", "收费价格", "普惠托育收费不高于中心城区建议标准",
          f"{_JINING}（十八）: 建议中心城区托育费收费标准乳儿班不高于2500元/人/月，托小班、托大班和混龄班不高于"
          "1900元/人/月"),
)

_JINING_FEE_TEXT = (f"{_JINING}（十八）明确普惠收费标准: 建议中心城区托育费收费标准乳儿班不高于2500元/人/月，"
                    "托小班、托大班和混龄班不高于1900元/人/月，其他县（市）可根据本地实际，参照中心城区标准自行定价")
_JINING_CONSTRUCTION = (f"{_JINING}（十六）①加大建设补助力度: 对新建的托育机构（含幼儿园托班）按照每个托位2000元的标准"
                        "给予建设补助，经验收合格后发放到相关机构")
_JINING_OPERATION = (f"{_JINING}（十六）②发放运营补助: 对已登记备案的普惠托育机构，根据机构收托人数，乳儿班按3000元/人/年"
                     "的标准给予补助，其他班按2000元/人/年的标准给予补助")
# 济宁's central city (中心城区): the two urban districts and the functional areas run from them.
JINING_CENTRAL_CITY = ("任城区", "兖州区", "济宁高新区", "太白湖新区", "济宁经济技术开发区")

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
        "checklist": _JINING_CHECKLIST,
        "fee_caps": FeeCaps(monthly_yuan={
            ClassType.INFANT: Requirement(value=2500, source=_JINING_FEE_TEXT),
            ClassType.TODDLER: Requirement(value=1900, source=_JINING_FEE_TEXT),
            ClassType.OLDER: Requirement(value=1900, source=_JINING_FEE_TEXT),
            ClassType.MIXED: Requirement(value=1900, source=_JINING_FEE_TEXT),
        }, districts=JINING_CENTRAL_CITY),
        "subsidies": SubsidyRates(
            construction_per_place=Requirement(value=2000, source=_JINING_CONSTRUCTION),
            operation_per_child_year={
                ClassType.INFANT: Requirement(value=3000, source=_JINING_OPERATION),
                ClassType.TODDLER: Requirement(value=2000, source=_JINING_OPERATION),
                ClassType.OLDER: Requirement(value=2000, source=_JINING_OPERATION),
                ClassType.MIXED: Requirement(value=2000, source=_JINING_OPERATION),
            }),
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
