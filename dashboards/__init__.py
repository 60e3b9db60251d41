"""Web pages for police, health, supervisors, facilities and the public, served by the cloud app.

Each page is one shell (templates/page.html: header, token login, scripts) around its own
body (templates/<page>.html); the shell is written once."""

from functools import cache
from pathlib import Path
from string import Template

STATIC_DIR = Path(__file__).resolve().parent / "static"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

# page -> (title in Chinese, its i18n key in common.js)
PAGES = {
    "police": ("托育机构报警 · 公安接警台", "policeTitle"),
    "health": ("托育机构卫生保健监测", "healthTitle"),
    "supervision": ("托育服务监管", "supervisionTitle"),
    "facility": ("本机构安防与设备状态", "facilityTitle"),
    "inspections": ("督导检查与备案审核", "inspectionsTitle"),
    "facility-supervision": ("本机构整改、备案与报告", "facilitySupervisionTitle"),
    "annual-report": ("托育服务年度报告", "annualTitle"),
    "public": ("托育机构备案公示", "publicTitle"),  # no token: read by anyone
}
# Scripts a page loads between common.js and its own: words the supervision pages share.
SHARED_SCRIPTS = {page: ("supervision-words.js",) for page in ("inspections", "facility-supervision",
                                                                  "annual-report", "public")}


@cache
def render_page(name: str) -> str:
    title, title_key = PAGES[name]
    shell = Template((TEMPLATES_DIR / "page.html").read_text(encoding="utf-8"))
    body = (TEMPLATES_DIR / f"{name}.html").read_text(encoding="utf-8")
    scripts = "\n  ".join(f'<script src="/static/{src}"></script>'
                            for src in (*SHARED_SCRIPTS.get(name, ()), f"{name}.js"))
    return shell.substitute(title=title, title_key=title_key, body=body, scripts=scripts)
