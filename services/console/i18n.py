"""The console's two languages, English and zh-CN, and locale-aware numbers, money and times."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

LANGUAGES = ("en", "zh-CN")
DEFAULT_LANGUAGE = "en"
# Shown where a value is unknown.
MISSING = "\u2013"

# Every text a page shows, by key: English first, then Simplified Chinese.
TEXTS: dict[str, tuple[str, str]] = {
    "app": ("TierFlow console", "TierFlow 控制台"),
    "signin": ("Sign in", "登录"),
    "signin.lead": ("Sign in with your TierFlow API key.", "请使用您的 TierFlow API 密钥登录。"),
    "signin.key": ("API key", "API 密钥"),
    "signin.invalid": ("That key was not accepted.", "该密钥无效。"),
    "signin.unavailable": (
        "TierFlow cannot be reached; try again shortly.",
        "暂时无法连接 TierFlow，请稍后再试。",
    ),
    "signin.expired": ("Your session ended; sign in again.", "会话已结束，请重新登录。"),
    "signout": ("Sign out", "退出"),
    "nav.overview": ("Overview", "总览"),
    "nav.customers": ("Customers", "客户"),
    "nav.queue": ("My queue", "我的任务"),
    "nav.policies": ("Policies", "分层策略"),
    "nav.playbooks": ("Playbooks", "触达剧本"),
    "nav.reports": ("Reports", "报表"),
    "lang.switch": ("中文", "English"),
    "signed_in_as": ("Key", "密钥"),
    "overview.distribution": ("Customers by tier and stage", "按层级与阶段的客户分布"),
    "overview.migrations": ("Tier migrations", "层级迁移矩阵"),
    "overview.migrations.axis": ("rows: tier at start · columns: tier at end", "行：期初层级 · 列：期末层级"),
    "overview.changes": ("Tier changes per day", "每日层级变动"),
    "overview.queue": ("Outreach queue by action and RM", "按动作与客户经理的触达队列"),
    "overview.workers": ("Consumer lag and dead letters", "消费延迟与死信"),
    "overview.window": ("Period", "期间"),
    "overview.total": ("Customers", "客户总数"),
    "overview.capacity": ("RM capacity", "客户经理容量"),
    "filter.apply": ("Apply", "应用"),
    "from": ("From", "起"),
    "to": ("To", "止"),
    "tier": ("Tier", "层级"),
    "stage": ("Stage", "阶段"),
    "score": ("Score", "评分"),
    "clv": ("Customer lifetime value", "客户终身价值"),
    "branch": ("Branch", "网点"),
    "segment": ("Segment", "客户类型"),
    "total": ("Total", "合计"),
    "count": ("Count", "数量"),
    "customers": ("customers", "客户数"),
    "day": ("Day", "日期"),
    "changes": ("changes", "变动次数"),
    "action": ("Action", "动作"),
    "rm": ("RM", "客户经理"),
    "unassigned": ("unassigned", "未分配"),
    "status": ("Status", "状态"),
    "items": ("Items", "条目"),
    "open_items": ("Open", "进行中"),
    "overdue": ("Overdue", "已逾期"),
    "capacity": ("Capacity", "容量"),
    "service": ("Service", "服务"),
    "topic": ("Topic", "主题"),
    "lag": ("Lag (records)", "延迟（条）"),
    "dead_letters": ("Dead letters", "死信"),
    "none": ("none", "无"),
    "not_permitted": ("This key may not see this.", "该密钥无权查看此内容。"),
    "not_found": ("Not found.", "未找到。"),
    "unavailable": ("Temporarily unavailable.", "暂时不可用。"),
    "customers.find": ("Find a customer by id", "按客户编号查找"),
    "customers.find.button": ("Open", "打开"),
    "customers.list": ("Customers", "客户列表"),
    "customers.next": ("Next page", "下一页"),
    "customers.first": ("First page", "第一页"),
    "customers.empty": ("No customers match.", "没有符合条件的客户。"),
    "any": ("any", "全部"),
    "customer.features": ("Features", "特征"),
    "customer.reasons": ("Why this tier and stage", "层级与阶段的依据"),
    "customer.history": ("Tier history", "层级历史"),
    "customer.outreach": ("Outreach", "触达"),
    "customer.surveys": ("Surveys", "满意度调查"),
    "customer.complaints": ("Complaints", "投诉"),
    "customer.override": ("Override", "人工调整"),
    "customer.override.set": ("Set override", "设置人工调整"),
    "customer.override.clear": ("Clear override", "清除人工调整"),
    "customer.override.reason": ("Reason", "原因"),
    "customer.override.expires": ("Expires on", "到期日"),
    "customer.override.active": ("Active override", "生效中的人工调整"),
    "customer.since": ("Tier since", "定级时间"),
    "customer.policy": ("Policy", "策略"),
    "customer.next_review": ("Next review", "下次复核"),
    "customer.timeline": ("Tier timeline", "层级时间线"),
    "customer.aum_gates": ("AUM against the tier gates", "资产规模与层级门槛"),
    "at": ("When", "时间"),
    "direction": ("Direction", "方向"),
    "cause": ("Cause", "起因"),
    "reasons": ("Reasons", "依据"),
    "kind": ("Kind", "类型"),
    "comment": ("Comment", "评论"),
    "severity": ("Severity", "严重度"),
    "category": ("Category", "类别"),
    "opened": ("Opened", "提出"),
    "resolved": ("Resolved", "解决"),
    "due": ("Due", "到期"),
    "sla_left": ("SLA left", "剩余 SLA"),
    "priority": ("Priority", "优先级"),
    "outcome": ("Outcome", "结果"),
    "note": ("Note", "备注"),
    "customer": ("Customer", "客户"),
    "reason": ("Reason", "原因"),
    "queue.claim": ("Claim", "认领"),
    "queue.start": ("Start", "开始"),
    "queue.complete": ("Complete", "完成"),
    "queue.survey": ("Ask for a survey", "发送满意度调查"),
    "queue.empty": ("No open items.", "没有待办条目。"),
    "queue.unbound": (
        "This key is not bound to an RM, so it cannot act on outreach items.",
        "该密钥未绑定客户经理，无法处理触达条目。",
    ),
    "queue.done": ("Saved.", "已保存。"),
    "overdue_by": ("overdue", "已逾期"),
    "policies.versions": ("Policy versions", "策略版本"),
    "policies.active": ("active", "生效中"),
    "policies.created": ("Created", "创建"),
    "policies.by": ("By", "创建人"),
    "policies.activated": ("Activated", "启用"),
    "policies.view": ("View", "查看"),
    "policies.diff": ("Compare", "比较"),
    "policies.simulate": ("Simulate a candidate", "模拟候选策略"),
    "policies.simulate.paste": ("Candidate policy (YAML)", "候选策略（YAML）"),
    "policies.simulate.upload": ("or upload a file", "或上传文件"),
    "policies.simulate.run": ("Simulate", "模拟"),
    "policies.simulation": ("Simulation", "模拟结果"),
    "policies.activate": ("Activate", "启用"),
    "policies.activate.confirm": (
        "Activate version {version}? Every customer is re-evaluated.",
        "确认启用版本 {version}？所有客户将被重新评估。",
    ),
    "policies.activate.yes": ("Yes, activate", "确认启用"),
    "policies.activated.note": ("Activated.", "已启用。"),
    "policies.samples": ("Sample customers", "示例客户"),
    "policies.candidate": ("Candidate", "候选"),
    "policies.current": ("Current", "当前"),
    "playbooks.versions": ("Playbook versions", "剧本版本"),
    "reports.satisfaction": ("NPS and CSAT", "NPS 与 CSAT"),
    "reports.complaints": ("Complaints", "投诉"),
    "reports.effectiveness": ("Outreach effectiveness", "触达成效"),
    "reports.by": ("By", "维度"),
    "nps": ("NPS", "NPS"),
    "csat": ("CSAT", "CSAT"),
    "responses": ("Responses", "回复数"),
    "reach_rate": ("Reach rate", "触达率"),
    "conversion_rate": ("Conversion", "转化率"),
    "comparison": ("Comparison group", "对照组"),
    "treated": ("Contacted", "已触达"),
    "yes": ("yes", "是"),
    "no": ("no", "否"),
    "cancel": ("Cancel", "取消"),
    "error.csrf": ("The form expired; please try again.", "表单已过期，请重试。"),
    "tier.private": ("Private", "私人银行"),
    "tier.wealth": ("Wealth", "财富"),
    "tier.vip": ("VIP", "贵宾"),
    "tier.mass": ("Mass", "大众"),
    "tier.none": ("(new)", "（新客户）"),
    "stage.prospect": ("Prospect", "潜在"),
    "stage.new": ("New", "新客"),
    "stage.regular": ("Regular", "常规"),
    "stage.core": ("Core", "核心"),
    "stage.at_risk": ("At risk", "流失风险"),
    "stage.churned": ("Churned", "已流失"),
    "direction.upgrade": ("up", "升级"),
    "direction.downgrade": ("down", "降级"),
    "direction.lateral": ("stage", "阶段变动"),
    "direction.initial": ("first", "首次"),
    "direction.stage": ("stage", "阶段变动"),
    "direction.labels": ("labels", "标签"),
    # Report columns, as the feedback API names them.
    "col.nps_responses": ("NPS answers", "NPS 回复"),
    "col.promoters": ("Promoters", "推荐者"),
    "col.detractors": ("Detractors", "贬损者"),
    "col.nps": ("NPS", "NPS"),
    "col.csat_responses": ("CSAT answers", "CSAT 回复"),
    "col.csat_avg": ("CSAT average", "CSAT 均值"),
    "col.complaints": ("Complaints", "投诉数"),
    "col.open": ("Open", "未解决"),
    "col.avg_resolution_hours": ("Avg. resolution (h)", "平均解决时长（小时）"),
    "col.customers": ("Customers", "客户数"),
    "col.moved_up": ("Moved up", "升级"),
    "col.held": ("Held", "保持"),
    "col.moved_down": ("Moved down", "降级"),
    "col.contacted": ("Contacted", "已触达"),
    "col.reached": ("Reached", "已联系上"),
    "col.converted": ("Converted", "已转化"),
    "col.surveys": ("Surveys", "调查数"),
    "col.nps_avg_after_contact": ("NPS after contact", "触达后 NPS"),
    "col.csat_avg_after_contact": ("CSAT after contact", "触达后 CSAT"),
    "col.tier": ("Tier", "层级"),
    "col.severity": ("Severity", "严重度"),
    "col.action": ("Action", "动作"),
    "col.stage": ("Stage", "阶段"),
    "col.branch": ("Branch", "网点"),
    "col.channel": ("Channel", "渠道"),
}


def negotiate(accept_language: str | None, chosen: str | None) -> str:
    """The chosen language when it is one of ours, else the browser's first supported one."""
    if chosen in LANGUAGES:
        return chosen
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Formatter:
    """Texts, numbers, money and times in one language; money in the base currency."""

    language: str
    currency: str

    @property
    def _babel(self) -> Locale:
        return Locale.parse(self.language.replace("-", "_"))

    @property
    def other_language(self) -> str:
        return LANGUAGES[1 - LANGUAGES.index(self.language)]

    def text(self, key: str, **values: str) -> str:
        english, chinese = TEXTS.get(key, (key, key))
        chosen = chinese if self.language == "zh-CN" else english
        return chosen.format(**values) if values else chosen

    def label(self, prefix: str, value: str | None) -> str:
        """A tier, stage or direction in this language; an unknown value as it is."""
        key = f"{prefix}.{value if value is not None else 'none'}"
        return self.text(key) if key in TEXTS else str(value)

    def column(self, key: str, grouped_by: str = "") -> str:
        """A report column's heading; `grp` is the column the report is grouped by."""
        name = grouped_by if key == "grp" else key
        return self.text(f"col.{name}") if f"col.{name}" in TEXTS else name

    def short_day(self, value: str) -> str:
        """A day as an axis label: `Oct 3` or `10月3日`."""
        return format_date(date.fromisoformat(value[:10]), "MMMd", locale=self._babel)

    def number(self, value: float | int | Decimal | str | None, digits: int = 0) -> str:
        if value is None or value == "":
            return MISSING
        pattern = "#,##0" + ("." + "0" * digits if digits else "")
        return format_decimal(_decimal(value), format=pattern, locale=self._babel)

    def money(self, value: str | Decimal | None) -> str:
        if value is None:
            return MISSING
        return format_currency(_decimal(value), self.currency, locale=self._babel)

    def percent(self, value: float | None) -> str:
        return MISSING if value is None else format_percent(value, format="#,##0.0%", locale=self._babel)

    def when(self, value: datetime | str | None) -> str:
        if value is None:
            return MISSING
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return format_datetime(moment, "yyyy-MM-dd HH:mm", locale=self._babel)

    def day(self, value: date | str) -> str:
        moment = date.fromisoformat(value[:10]) if isinstance(value, str) else value
        return format_date(moment, "medium", locale=self._babel)

    def globals(self) -> dict[str, Callable[..., str] | str]:
        return {
            "t": self.text,
            "label": self.label,
            "column": self.column,
            "number": self.number,
            "money": self.money,
            "percent": self.percent,
            "when": self.when,
            "day": self.day,
            "language": self.language,
            "other_language": self.other_language,
        }


def _decimal(value: float | int | Decimal | str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)
