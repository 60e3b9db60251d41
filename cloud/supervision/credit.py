"""Credit records (信用记录): overdue rectifications, returned filings and incidents each add an
entry naming the rule that put it there; a facility's score is 100 plus its entries' points.

The plans ask for credit records with joint penalties (柴桑: 违法信息纳入公共信用信息服务平台，实行联合
惩戒; 株洲: 失信联合惩戒; 鼓楼: 信用信息监管); the points are CareGuard's own scale."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any, Optional

from pydantic import BaseModel, Field
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from cloud.store.db import facilities, upsert_insert
from cloud.supervision.scope import jurisdiction_clause
from cloud.supervision.tables import credit_entries


class CreditRule(BaseModel):
    key: str
    points: int
    text: str
    source: str


class CreditRuleKey(str, Enum):
    RECTIFICATION_OVERDUE = "rectification_overdue"
    FILING_RETURNED = "filing_returned"
    INCIDENT = "incident"


_CHAISANG = ("九江市柴桑区促进3岁以下婴幼儿照护服务发展的实施方案: 建立……日常巡查、违法查处、诚信评价等综合监管机制；"
             "将婴幼儿照护服务机构的违法信息纳入公共信用信息服务平台，实行联合惩戒制度")
CREDIT_RULES: dict[CreditRuleKey, CreditRule] = {
    CreditRuleKey.RECTIFICATION_OVERDUE: CreditRule(
        key="rectification_overdue", points=-10, text="检查发现的问题逾期未整改", source=_CHAISANG),
    CreditRuleKey.FILING_RETURNED: CreditRule(
        key="filing_returned", points=-2, text="备案材料不符合要求被退回",
        source="福州市鼓楼区关于促进3岁以下婴幼儿照护服务的实施意见: 按照告知承诺制要求向当地卫生健康部门备案……"
               "建立和完善婴幼儿照护服务从业机构和人员的信用信息监管"),
    CreditRuleKey.INCIDENT: CreditRule(
        key="incident", points=-5, text="发生安全事故",
        source="昆明市晋宁区促进3岁以下婴幼儿照护服务发展的实施方案: 建立安全隐患排查、事故查处通报、责任追究制度和措施; "
               + _CHAISANG),
}
BASE_SCORE = 100
# Score bands (A: good standing ... D: joint penalties apply), CareGuard's scale.
LEVELS = ((90, "A"), (75, "B"), (60, "C"))


def level_for(score: int) -> str:
    return next((name for floor, name in LEVELS if score >= floor), "D")


class CreditEntry(BaseModel):
    id: int
    facility: str
    at: datetime
    rule: str
    points: int
    rule_text: str
    source: str = Field(description="the text the rule comes from")
    ref: str = Field(description="the finding, filing or report behind the entry")
    detail: dict[str, Any]


class CreditRecord(BaseModel):
    facility: str
    name: str
    score: int
    level: str
    entries: list[CreditEntry]


class CreditSummary(BaseModel):
    facility: str
    name: str
    district: str
    score: int
    level: str
    entries: int


def add_entry(conn: Connection, *, facility: str, rule: CreditRuleKey, ref: str, detail: dict[str, Any],
              now: datetime) -> bool:
    """Record one entry; False when this rule already recorded this `ref`."""
    ins = upsert_insert(conn.dialect.name, credit_entries).values(
        facility=facility, at=now, rule=rule.value, ref=ref, points=CREDIT_RULES[rule].points, detail=detail)
    return conn.execute(ins.on_conflict_do_nothing(index_elements=["rule", "ref"])
                        .returning(credit_entries.c.id)).scalar() is not None


def _entry(row) -> CreditEntry:
    rule = CREDIT_RULES[CreditRuleKey(row.rule)]
    return CreditEntry(id=row.id, facility=row.facility, at=row.at, rule=row.rule, points=row.points,
                       rule_text=rule.text, source=rule.source, ref=row.ref, detail=row.detail)


def credit_record(conn: Connection, facility_id: str, name: str) -> CreditRecord:
    c = credit_entries.c
    entries = [_entry(r) for r in conn.execute(select(credit_entries).where(c.facility == facility_id)
                                               .order_by(c.at, c.id))]
    score = BASE_SCORE + sum(e.points for e in entries)
    return CreditRecord(facility=facility_id, name=name, score=score, level=level_for(score), entries=entries)


def credit_summaries(conn: Connection, jurisdiction: Optional[str]) -> list[CreditSummary]:
    """Every facility in `jurisdiction` with its score, lowest score first."""
    f, c = facilities.c, credit_entries.c
    totals = (select(c.facility, func.sum(c.points).label("points"), func.count().label("n"))
              .group_by(c.facility).subquery())
    q = (select(f.facility_id, f.name, f.province, f.city, f.district, totals.c.points, totals.c.n)
         .outerjoin(totals, totals.c.facility == f.facility_id)
         .where(jurisdiction_clause(f.province, f.city, f.district, jurisdiction)))
    out = []
    for r in conn.execute(q):
        score = BASE_SCORE + int(r.points or 0)
        out.append(CreditSummary(facility=r.facility_id, name=r.name, district=f"{r.province}/{r.city}/{r.district}",
                                 score=score, level=level_for(score), entries=int(r.n or 0)))
    return sorted(out, key=lambda s: (s.score, s.facility))
