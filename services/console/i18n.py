"""The console's two languages, English and zh-CN, and locale-aware numbers, money and times."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

from services.console import outreach_reasons

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
    "unassigned": ("Unassigned", "未分配"),
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
    "queue.unassigned": ("Unassigned in your branch", "本网点未分配"),
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
    "unknown": ("unknown", "未知"),
    "reports.holdouts": ("Treated against held out (randomised)", "触达组与随机对照组"),
    "reports.experiment": ("Experiment", "实验"),
    "col.tier_up": ("Moved up (difference)", "升级比例（差值）"),
    "col.nps_later": ("NPS later (difference)", "后续 NPS（差值）"),
    "conclusion.treated higher": ("treated higher", "触达组更高"),
    "conclusion.treated lower": ("treated lower", "触达组更低"),
    "conclusion.no difference shown": ("no difference shown", "未见差异"),
    "conclusion.too small to conclude": ("too small to conclude", "样本太小，无法判断"),
    # Values the services send as enum names, by prefix (see Formatter.label).
    "action.assign_rm": ("Assign an RM", "分配客户经理"),
    "action.rm_call": ("RM call", "客户经理致电"),
    "action.sms": ("SMS", "短信"),
    "action.email": ("Email", "电子邮件"),
    "action.app_push": ("App push", "App 推送"),
    "action.branch_invitation": ("Branch invitation", "网点邀约"),
    "action.offer": ("Offer", "产品优惠"),
    "action.return_visit_call": ("Return-visit call", "回访电话"),
    "action.survey": ("Survey", "满意度调查"),
    "action.digital_coaching": ("Digital coaching", "数字渠道辅导"),
    "status.queued": ("queued", "待分配"),
    "status.assigned": ("assigned", "已分配"),
    "status.in_progress": ("in progress", "处理中"),
    "status.completed": ("completed", "已完成"),
    "status.cancelled": ("cancelled", "已取消"),
    "status.expired": ("expired", "已过期"),
    "status.held_out": ("held out", "对照组保留"),
    "status.covered": ("covered by the household's contact", "已由家庭联系覆盖"),
    "status.open": ("open", "未解决"),
    "status.resolved": ("resolved", "已解决"),
    "priority.high": ("high", "高"),
    "priority.normal": ("normal", "中"),
    "priority.low": ("low", "低"),
    "outcome.reached": ("reached", "已联系上"),
    "outcome.not_reached": ("not reached", "未联系上"),
    "outcome.converted": ("converted", "已转化"),
    "outcome.declined": ("declined", "已婉拒"),
    "kind.nps": ("NPS", "NPS"),
    "kind.csat": ("CSAT", "CSAT"),
    "severity.low": ("low", "低"),
    "severity.medium": ("medium", "中"),
    "severity.high": ("high", "高"),
    "severity.critical": ("critical", "严重"),
    "category.card": ("card", "银行卡"),
    "category.transfer": ("transfer", "转账"),
    "category.fees": ("fees", "收费"),
    "category.service": ("service", "服务"),
    "category.app": ("app", "手机银行"),
    "category.marketing": ("marketing", "营销"),
    "category.retention": ("retention", "挽留"),
    "channel": ("Channel", "渠道"),
    "channel.branch": ("branch", "网点"),
    "channel.mobile": ("mobile", "手机银行"),
    "channel.online": ("online", "网上银行"),
    "channel.atm": ("ATM", "ATM"),
    "channel.phone": ("phone", "电话"),
    "channel.rm": ("RM", "客户经理"),
    "channel.sms": ("SMS", "短信"),
    "channel.email": ("email", "电子邮件"),
    "channel.app": ("app", "App"),
    "channel.internal": ("internal", "内部"),
    "channel.unknown": ("unknown", "未知"),
    "segment.individual": ("individual", "个人"),
    "segment.corporate": ("corporate", "企业"),
    "segment.institution": ("institution", "机构"),
    "nps_category.promoter": ("promoter", "推荐者"),
    "nps_category.passive": ("passive", "中立者"),
    "nps_category.detractor": ("detractor", "贬损者"),
    "cause.review": ("review", "定期复核"),
    "cause.override": ("override", "人工调整"),
    "cause.event": ("event", "业务事件"),
    "arm.treated": ("treated", "触达组"),
    "arm.held_out": ("held out", "对照组"),
    "dimension.needs": ("needs", "需求"),
    "dimension.behaviour": ("behaviour", "行为"),
    "dimension.loyalty": ("loyalty", "忠诚度"),
    "labels": ("Labels", "客户标签"),
    "label.investment_intent": ("investment intent", "投资意向"),
    "label.borrowing_need": ("borrowing need", "融资需求"),
    "label.salary_earner": ("salary earner", "代发工资客户"),
    "label.digital_first": ("digital first", "数字化优先"),
    "label.branch_reliant": ("branch reliant", "依赖网点"),
    "label.digital_difficulty": ("digital difficulty", "数字渠道困难"),
    "label.high_loyalty": ("high loyalty", "高忠诚度"),
    "label.service_sensitive": ("service sensitive", "服务敏感"),
    # A reason's condition: the feature, then how the customer's value compares with the policy's.
    "op.gte": ("at least", "不低于"),
    "op.gt": ("above", "高于"),
    "op.lte": ("at most", "不高于"),
    "op.lt": ("below", "低于"),
    "op.eq": ("is", "等于"),
    "op.ne": ("is not", "不等于"),
    "reason.condition": (
        "{feature} {value} ({operator} {threshold})",
        "{feature} {value}（{operator} {threshold}）",
    ),
    "outreach.label_entered": ("entered {label}", "新增{label}"),
    "outreach.label_left": ("left {label}", "移除{label}"),
    "outreach.duplicate_open": ("duplicate: an open {kind} item exists", "重复：已有未完成的{kind}任务"),
    "outreach.duplicate_change": (
        "duplicate: covered by the {rule} {kind} of this change",
        "重复：本次变动已由规则 {rule} 的{kind}覆盖",
    ),
    "outreach.complaint": (
        "guardrail: an open high-severity complaint suppresses marketing",
        "保护规则：有未结的高严重度投诉，暂停营销",
    ),
    "outreach.risk_unknown": (
        "guardrail: {product} needs a known risk profile",
        "保护规则：{product} 需要已知的风险评级",
    ),
    "outreach.risk_unsuited": (
        "guardrail: {product} does not suit risk profile {risk}",
        "保护规则：{product} 不适合风险评级 {risk}",
    ),
    "outreach.label_channels": (
        "guardrail: {labels} customers get no {category} by {channels}",
        "保护规则：{labels}客户不通过{channels}接收{category}",
    ),
    "outreach.cap": (
        "guardrail: frequency cap of {count} {category} contacts per {days} days",
        "保护规则：频次上限，每 {days} 天最多 {count} 次{category}联系",
    ),
    "outreach.no_channel": (
        "guardrail: no consented channel (opted out of {channels})",
        "保护规则：无已授权渠道（已退订{channels}）",
    ),
    "outreach.drawn": (
        "holdout: control group of experiment {experiment} ({share}% held out)",
        "对照组：实验 {experiment} 的对照组（保留 {share}%）",
    ),
    "outreach.held": (
        "holdout: held out of {kind} by experiment {experiment} until {until}, whatever rule triggers it",
        "对照组：实验 {experiment} 在 {until} 前不对其执行{kind}，无论由哪条规则触发",
    ),
    "outreach.covered": (
        "household: covered by household {household}'s {kind} {item} for household change {change}",
        "家庭：已由家庭 {household} 的{kind}（{item}）覆盖，家庭变动 {change}",
    ),
    "outreach.household_contact": (
        "{planned} (household {household} contact)",
        "{planned}（作为家庭 {household} 的统一联系）",
    ),
    "list.separator": (", ", "、"),
    "list.and": (" and ", "和"),
    "reason.separator": ("; ", "；"),
    "reason.fallback": ("no other rule matched", "未满足其他规则"),
    "rule.hysteresis.hold": ("Grace period", "降级宽限"),
    "rule.hysteresis.downgrade": ("Downgrade", "降级"),
    "reason.override": ("set by hand (see the override)", "人工调整（见人工调整一栏）"),
    "reason.hysteresis.hold": (
        "below the gate of the tier held, kept during the grace period",
        "低于原层级门槛，宽限期内保留原层级",
    ),
    "reason.hysteresis.downgrade": (
        "below the gate of the tier held beyond the margin or the grace period",
        "低于原层级门槛且超出容差或宽限期，予以降级",
    ),
    "reason.label_left": ("its conditions no longer hold", "条件不再满足，标签已移除"),
    "reason.label_kept": (
        "kept for a while although its conditions no longer hold",
        "条件已不满足，保留期内暂时保留",
    ),
    "feature.txn_count": ("transactions", "交易笔数"),
    "feature.txn_amount": ("transaction volume", "交易金额"),
    "feature.txn_count_30d": ("transactions (30 days)", "近30日交易笔数"),
    "feature.txn_count_90d": ("transactions (90 days)", "近90日交易笔数"),
    "feature.txn_count_365d": ("transactions (365 days)", "近365日交易笔数"),
    "feature.txn_amount_30d": ("transaction volume (30 days)", "近30日交易金额"),
    "feature.txn_amount_90d": ("transaction volume (90 days)", "近90日交易金额"),
    "feature.txn_amount_365d": ("transaction volume (365 days)", "近365日交易金额"),
    "feature.interaction_count": ("interactions", "互动次数"),
    "feature.interactions_30d": ("interactions (30 days)", "近30日互动次数"),
    "feature.interactions_90d": ("interactions (90 days)", "近90日互动次数"),
    "feature.activity_count": ("activities", "活动次数"),
    "feature.days_since_last_txn": ("days since the last transaction", "距上次交易天数"),
    "feature.days_since_last_interaction": ("days since the last interaction", "距上次互动天数"),
    "feature.days_since_last_activity": ("days since the last activity", "距上次活动天数"),
    "feature.aum": ("AUM", "资产规模"),
    "feature.aum_avg_30d": ("average AUM (30 days)", "近30日日均资产"),
    "feature.aum_avg_90d": ("average AUM (90 days)", "近90日日均资产"),
    "feature.aum_trend_30_90": ("AUM trend (30 vs 90 days)", "资产趋势（30日/90日）"),
    "feature.products_held": ("products held", "持有产品数"),
    "feature.tenure_days": ("days as a customer", "客户关系天数"),
    "feature.nps_latest": ("latest NPS", "最近一次 NPS"),
    "feature.nps_age_days": ("days since the latest NPS", "距最近一次 NPS 天数"),
    "feature.nps_category": ("NPS category", "NPS 类别"),
    "feature.csat_avg": ("average CSAT", "CSAT 均值"),
    "feature.complaints_open": ("open complaints", "未解决投诉"),
    "feature.complaints_open_high": ("open serious complaints", "未解决的严重投诉"),
    "feature.credits_30d": ("inflows (30 days)", "近30日入账笔数"),
    "feature.credit_months_90d": ("months with inflows (of 3)", "近3个月有入账的月数"),
    "feature.outflow_ratio_30d": ("net outflow ratio (30 days)", "近30日净流出比"),
    "feature.digital_share": ("digital share (%)", "数字渠道占比（%）"),
    "feature.branch_share": ("assisted share (%)", "人工渠道占比（%）"),
    "feature.support_calls_30d": ("support calls (30 days)", "近30日客服来电"),
    "feature.login_failures_30d": ("failed sign-ins (30 days)", "近30日登录失败次数"),
    "feature.days_since_investment": ("days since the last investment", "距上次投资天数"),
    "feature.days_since_loan": ("days since the last loan", "距上次贷款天数"),
    "feature.risk_level": ("risk level", "风险等级"),
    "feature.balance_known_days": ("days of known balances", "已知余额天数"),
    "feature.segment": ("segment", "客户类型"),
    "feature.region": ("region", "地区"),
    "feature.risk_profile": ("risk profile", "风险评级"),
    "feature.score": ("score", "评分"),
    "feature.tier": ("tier", "层级"),
    "feature.clv": ("customer lifetime value", "客户终身价值"),
}


# Features whose values are money in the base currency, and those whose values are names.
MONEY_FEATURES = frozenset(
    {"aum", "aum_avg_30d", "aum_avg_90d", "txn_amount", "txn_amount_30d", "txn_amount_90d", "txn_amount_365d"}
)
NAMED_FEATURES = frozenset({"nps_category", "segment", "tier"})


# How engagement words the reason for a planned item (services/engagement/domain/planning.py).
_PLANNED = re.compile(
    r"(?P<rule>[^:]+): (?P<tier_before>\w+)/(?P<stage_before>\w+) -> (?P<tier>\w+)/(?P<stage>\w+)"
    r"(?: \((?P<labels>(?:entered|left) \w+(?:, (?:entered|left) \w+)*)\))?"
)


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
        if key in TEXTS:
            return self.text(key)
        return self.text("unknown") if value == "unknown" else str(value)

    def column(self, key: str, grouped_by: str = "") -> str:
        """A report column's heading; `grp` is the column the report is grouped by."""
        name = grouped_by if key == "grp" else key
        return self.text(f"col.{name}") if f"col.{name}" in TEXTS else name

    def reason(self, reason: Mapping[str, Any]) -> str:
        """A reason in this language, from its conditions where it has them.

        Reasons without conditions are a catch-all rule, hysteresis, an override or a label kept
        or left; a reason recorded before conditions were kept is shown as it was recorded."""
        conditions = reason.get("conditions") or []
        if conditions:
            return self.text("reason.separator").join(self._condition(c) for c in conditions)
        rule, detail = str(reason["rule"]), str(reason["detail"])
        if detail == "no other rule matched":
            return self.text("reason.fallback")
        if rule in ("override", "hysteresis.hold", "hysteresis.downgrade"):
            return self.text(f"reason.{rule}")
        if rule.startswith("label.") and detail.startswith(("left", "outside")):
            return self.text("reason.label_left" if detail.startswith("left") else "reason.label_kept")
        return detail

    def outreach_reason(self, reason: str) -> str:
        """Why engagement planned, held out or stopped an item, in this language: a planned
        reason (`rule: vip/new -> wealth/core (entered x, left y)`), a guardrail, holdout,
        duplicate or household reason; a sentence the console does not know as it was written."""
        planned = self._planned_reason(reason)
        if planned is not None:
            return planned
        known = outreach_reasons.match(reason)
        if known is None:
            return reason
        key, parts = known
        try:
            return self.text(key, **{name: self._outreach_part(name, value) for name, value in parts.items()})
        except ValueError:  # a part that is not what it should be (a time that is none): as written
            return reason

    def _planned_reason(self, reason: str) -> str | None:
        found = _PLANNED.fullmatch(reason)
        if found is None:
            return None
        before, after = (
            f"{self.label('tier', tier if tier != 'new' else None)}/{self.label('stage', stage)}"
            for tier, stage in (
                (found["tier_before"], found["stage_before"]),
                (found["tier"], found["stage"]),
            )
        )
        labels = [
            self.text(f"outreach.label_{change}", label=self.label("label", name))
            for change, name in (part.split(" ", 1) for part in (found["labels"] or "").split(", ") if part)
        ]
        moved = self.text("reason.separator").join(labels)
        return f"{found['rule']}: {before} → {after}" + (f" ({moved})" if moved else "")

    def _outreach_part(self, name: str, value: str) -> str:
        if name in outreach_reasons.LABELLED:
            return self.label(outreach_reasons.LABELLED[name], value)
        if name in outreach_reasons.LISTED:
            prefix, separator, joined_by = outreach_reasons.LISTED[name]
            return self.text(joined_by).join(self.label(prefix, part) for part in value.split(separator))
        if name == "until":
            return self.when(value)
        if name == "planned":  # only a planned reason gets a household's suffix
            planned = self._planned_reason(value)
            if planned is None:
                raise ValueError(f"not a planned reason: {value}")
            return planned
        return value

    def rule(self, rule: str) -> str:
        """The rule behind a reason by name: a tier, a stage, a label, hysteresis or an override."""
        kind, _, name = rule.partition(".")
        if kind in ("tier", "stage", "label"):
            return self.label(kind, name)
        return self.text("customer.override") if rule == "override" else self.label("rule", rule)

    def _condition(self, condition: Mapping[str, str]) -> str:
        feature = condition["feature"]
        return self.text(
            "reason.condition",
            feature=self.label("feature", feature),
            value=self._value(feature, condition["value"]),
            operator=self.label("op", condition["operator"]),
            threshold=self._value(feature, condition["threshold"]),
        )

    def _value(self, feature: str, value: str) -> str:
        if feature in NAMED_FEATURES:
            return self.label(feature, value)
        if feature in MONEY_FEATURES:
            return self.money(value)
        try:
            number = Decimal(value)
        except InvalidOperation:
            return value
        return self.number(number, 0 if number == number.to_integral_value() else 2)

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
            "reason": self.reason,
            "rule": self.rule,
            "outreach_reason": self.outreach_reason,
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
