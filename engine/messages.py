"""The message catalogue: every stable error code with its en and zh-CN text.

Messages name the rule that failed, never the offending value, so that a masked field cannot
leak through an error.
"""
from __future__ import annotations

from typing import Any, Mapping

CATALOGUE: dict[str, dict[str, str]] = {
    # durations and business calendars (engine.calendars)
    "duration.not_text": {"en": "A duration must be an ISO-8601 text such as PT24H", "zh-CN": "时长须为 ISO-8601 文本，例如 PT24H"},
    "duration.syntax": {"en": "Not an ISO-8601 duration; expected e.g. PT24H, P2D, PT30M, P1DT4H or P1W", "zh-CN": "不是 ISO-8601 时长；应形如 PT24H、P2D、PT30M、P1DT4H 或 P1W"},
    "duration.empty": {"en": "The duration names no amount: add at least one component after P or T", "zh-CN": "时长没有任何数值：P 或 T 之后至少需要一个分量"},
    "duration.negative": {"en": "A duration cannot be negative", "zh-CN": "时长不能为负"},
    "duration.ambiguous_unit": {"en": "Years and months have no fixed length; use days (D) or weeks (W)", "zh-CN": "年和月没有固定长度；请使用天（D）或周（W）"},
    "duration.fraction_not_allowed": {"en": "Only the last of the hours, minutes or seconds may have a fraction", "zh-CN": "只有最后一个时、分或秒分量可以带小数"},
    "duration.too_precise": {"en": "A duration cannot be finer than one microsecond", "zh-CN": "时长精度不能超过一微秒"},
    "duration.too_large": {"en": "A duration may be at most {limit_days} days", "zh-CN": "时长最多为 {limit_days} 天"},
    "calendar.not_object": {"en": "An object is expected here", "zh-CN": "此处需要一个对象"},
    "calendar.not_list": {"en": "A list is expected here", "zh-CN": "此处需要一个列表"},
    "calendar.not_text": {"en": "A text is expected here", "zh-CN": "此处需要文本"},
    "calendar.unknown_key": {"en": "Unknown setting {key}; expected one of {expected}", "zh-CN": "未知设置 {key}；应为 {expected} 之一"},
    "calendar.unknown_timezone": {"en": "Unknown time zone {timezone}; use an IANA name such as Asia/Shanghai", "zh-CN": "未知时区 {timezone}；请使用 IANA 名称，例如 Asia/Shanghai"},
    "calendar.unknown_country": {"en": "No public holidays are known for country {country}", "zh-CN": "没有国家 {country} 的法定节假日数据"},
    "calendar.unknown_subdivision": {"en": "Country {country} has no subdivision {subdivision}", "zh-CN": "国家 {country} 没有行政区 {subdivision}"},
    "calendar.unknown_category": {"en": "Country {country} has no holiday category {category}; expected one of {expected}", "zh-CN": "国家 {country} 没有节假日类别 {category}；应为 {expected} 之一"},
    "calendar.unknown_weekday": {"en": "Unknown weekday {key}; use mon, tue, wed, thu, fri, sat, sun or a range (mon-fri)", "zh-CN": "未知的星期 {key}；请使用 mon、tue、wed、thu、fri、sat、sun 或 mon-fri 这样的范围"},
    "calendar.weekday_repeated": {"en": "Weekday {weekday} is given more than once", "zh-CN": "星期 {weekday} 被重复设置"},
    "calendar.bad_hours": {"en": "Working hours must look like 09:00-12:00 (end after start, at most 24:00)", "zh-CN": "工作时段须形如 09:00-12:00（结束晚于开始，最晚 24:00）"},
    "calendar.hours_overlap": {"en": "Working hours of one day must be in order and must not overlap", "zh-CN": "同一天的工作时段须按顺序排列且不能重叠"},
    "calendar.no_working_hours": {"en": "The week has no working hours at all", "zh-CN": "一周中没有任何工作时段"},
    "calendar.bad_date": {"en": "A date must look like 2026-10-08", "zh-CN": "日期须形如 2026-10-08"},
    "calendar.date_conflict": {"en": "Date {date} is listed both as a holiday and as a working day", "zh-CN": "日期 {date} 同时被列为节假日和工作日"},
    "calendar.no_working_time": {"en": "The calendar has no working time within {years} years of {start}", "zh-CN": "日历在 {start} 之后 {years} 年内没有任何工作时间"},
    # request
    "request.invalid_json": {"en": "The body is not valid JSON: {reason}", "zh-CN": "请求体不是有效的 JSON：{reason}"},
    "request.non_finite_number": {"en": "{token} is not a valid number", "zh-CN": "{token} 不是有效的数字"},
    "request.number_out_of_range": {"en": "Numbers may have at most {digits} digits and a magnitude below 1e40", "zh-CN": "数字最多 {digits} 位有效数字，且数量级须小于 1e40"},
    "request.bad_string": {"en": "A text contains a character that cannot be stored ({reason})", "zh-CN": "文本包含无法存储的字符（{reason}）"},
    "request.float_number": {"en": "Pass numbers as Decimal or int, never float (floats cannot hold money exactly)", "zh-CN": "数字须为 Decimal 或 int，不能是 float（浮点数无法精确表示金额）"},
    "request.unsupported_value": {"en": "A value of type {type} is not JSON", "zh-CN": "类型 {type} 的值不是 JSON"},
    "request.too_deep": {"en": "The document is nested deeper than {limit} levels", "zh-CN": "文档嵌套超过 {limit} 层"},
    "request.too_large": {"en": "The body is larger than {limit} bytes", "zh-CN": "请求体超过 {limit} 字节"},
    "request.not_object": {"en": "An object is expected here", "zh-CN": "此处需要一个对象"},
    "request.bad_parameter": {"en": "Parameter {name} is invalid: {reason}", "zh-CN": "参数 {name} 无效：{reason}"},
    # readiness (GET /ready)
    "ready.database_unreachable": {"en": "The database cannot be reached ({type})", "zh-CN": "无法连接数据库（{type}）"},
    "ready.migrations_pending": {"en": "The database is at migration {current}, this engine needs {head}: run `lowcode migrate`", "zh-CN": "数据库处于迁移版本 {current}，本引擎需要 {head}：请运行 `lowcode migrate`"},
    "ready.schema_unknown": {"en": "The database is at migration {current}, which this engine (head {head}) does not know: it was migrated by a newer version", "zh-CN": "数据库处于迁移版本 {current}，本引擎（最新版本 {head}）不认识该版本：数据库已由更新的版本迁移"},
    # not found / conflict
    "definition.not_found": {"en": "No {kind} definition named {key}", "zh-CN": "不存在名为 {key} 的 {kind} 定义"},
    "definition.version_not_found": {"en": "{kind} {key} has no version {version}", "zh-CN": "{kind} {key} 没有版本 {version}"},
    "record.not_found": {"en": "No record with id {id}", "zh-CN": "不存在 id 为 {id} 的记录"},
    "task.not_found": {"en": "No task with id {id}", "zh-CN": "不存在 id 为 {id} 的任务"},
    "instance.not_found": {"en": "No process instance with id {id}", "zh-CN": "不存在 id 为 {id} 的流程实例"},
    "report.not_found": {"en": "No report named {key}", "zh-CN": "不存在名为 {key} 的报表"},
    "task.not_open": {"en": "The task is already {status}", "zh-CN": "该任务已是{status}状态"},
    "task.conflict": {"en": "Someone acted on this task at the same time; reload and retry", "zh-CN": "该任务已被他人同时处理，请刷新后重试"},
    "task.unknown_action": {"en": "Action {action} is not available on this task; available: {available}", "zh-CN": "此任务不支持操作 {action}；可用操作：{available}"},
    "task.own_request": {"en": "You cannot act on a request you submitted yourself", "zh-CN": "不能审批自己提交的申请"},
    "task.already_signed": {"en": "You have already signed this countersign; another person must sign", "zh-CN": "您已在本次会签中签署，须由其他人签署"},
    "task.not_assignee": {"en": "This task is not assigned to you", "zh-CN": "该任务未分配给您"},
    "task.not_claimable": {"en": "This task is assigned to a person and cannot be claimed", "zh-CN": "该任务已指定处理人，不能认领"},
    "task.claimed": {"en": "This task was claimed by {by}", "zh-CN": "该任务已被 {by} 认领"},
    "task.bad_add_mode": {"en": "Mode {mode} is not one of before, after, parallel", "zh-CN": "加签方式 {mode} 无效，应为 before、after 或 parallel"},
    "task.parallel_needs_countersign": {"en": "A parallel approver can only be added to a countersign step", "zh-CN": "只有会签环节可以并行加签"},
    "task.bad_added_approver": {"en": "The applicant or yourself cannot be added as an approver", "zh-CN": "不能将申请人或您本人加为审批人"},
    "task.already_approver": {"en": "{user} already takes part in this step", "zh-CN": "{user} 已是本环节的审批人"},
    "task.comment_required": {"en": "Action {action} needs a comment", "zh-CN": "操作 {action} 需要填写意见"},
    "instance.bad_send_back_target": {"en": "The case cannot be sent back to {state}: only to an earlier human step it passed through", "zh-CN": "不能退回到 {state}：只能退回到已经过的人工环节"},
    "instance.send_back_limit": {"en": "The case was already sent back {limit} times, the most this process allows", "zh-CN": "该流程已退回 {limit} 次，已达上限"},
    "instance.not_applicant": {"en": "Only the applicant can withdraw the request", "zh-CN": "只有申请人可以撤回申请"},
    "instance.already_decided": {"en": "The request can no longer be withdrawn: someone has already decided on it", "zh-CN": "已有审批人处理，申请不能再撤回"},
    "instance.cancel_forbidden": {"en": "You may not cancel this case", "zh-CN": "您无权终止该流程"},
    "instance.not_participant": {"en": "You take no part in this case", "zh-CN": "您不是该流程的参与人"},
    "instance.urged_recently": {"en": "This case was urged less than an hour ago; next possible at {next_at}", "zh-CN": "一小时内已催办过，下次可催办时间 {next_at}"},
    "instance.not_active": {"en": "The case is already {status}", "zh-CN": "该流程已是{status}状态"},
    "instance.not_at_state": {"en": "The case is no longer at {state}", "zh-CN": "流程已不在 {state} 环节"},
    "definition.conflict": {"en": "Another upload of {kind} {key} happened at the same time; retry", "zh-CN": "{kind} {key} 正被同时上传，请重试"},
    # definitions
    "definition.schema": {"en": "{detail}", "zh-CN": "定义不符合元模式：{detail}"},
    "definition.unknown_kind": {"en": "Unknown definition kind {kind}; expected one of {expected}", "zh-CN": "未知的定义类型 {kind}；应为 {expected} 之一"},
    "definition.remote_ref": {"en": "Only local $ref (starting with #) is allowed", "zh-CN": "只允许本地 $ref（以 # 开头）"},
    "definition.bad_schema": {"en": "The form schema is not valid JSON Schema 2020-12: {detail}", "zh-CN": "表单模式不是有效的 JSON Schema 2020-12：{detail}"},
    "definition.bad_pattern": {"en": "The pattern cannot be compiled: {detail} (patterns run in linear time: look-around and back-references are not available)", "zh-CN": "正则表达式无法编译：{detail}（正则按线性时间执行，不支持环视和反向引用）"},
    "definition.unknown_field": {"en": "Unknown field {field}", "zh-CN": "未知字段 {field}"},
    "definition.unknown_form": {"en": "No form named {form}", "zh-CN": "不存在名为 {form} 的表单"},
    "definition.unknown_process": {"en": "No process named {process}", "zh-CN": "不存在名为 {process} 的流程"},
    "definition.unknown_state": {"en": "No state named {state}", "zh-CN": "不存在名为 {state} 的状态"},
    "definition.missing_default": {"en": "The last transition must have no condition (the default)", "zh-CN": "最后一个流转必须无条件（默认流转）"},
    "definition.no_actions": {"en": "A human state needs at least one action", "zh-CN": "人工节点至少需要一个操作"},
    "definition.computed_undeclared": {"en": "Computed field {field} is not declared in the schema", "zh-CN": "计算字段 {field} 未在模式中声明"},
    "definition.computed_cycle": {"en": "Computed fields depend on each other in a cycle: {cycle}", "zh-CN": "计算字段存在循环依赖：{cycle}"},
    "definition.bad_rule": {"en": "The rule is not valid JSONLogic: {detail}", "zh-CN": "规则不是有效的 JSONLogic：{detail}"},
    "definition.rule_too_complex": {"en": "The rule is too deep or too large (limit {limit})", "zh-CN": "规则过深或过大（上限 {limit}）"},
    "definition.bad_field_type": {"en": "Field {field} has type {actual}; {expected} is needed here", "zh-CN": "字段 {field} 类型为 {actual}；此处需要 {expected}"},
    "definition.duplicate_name": {"en": "Name {name} is used twice", "zh-CN": "名称 {name} 重复"},
    "definition.process_of_other_form": {"en": "Process {process} belongs to another form", "zh-CN": "流程 {process} 属于其他表单"},
    "definition.forbidden": {"en": "Uploading definitions needs one of the roles {roles}", "zh-CN": "上传定义需要以下角色之一：{roles}"},
    "definition.bad_decimal": {"en": "x-decimal must be {{\"scale\": N}} with N from 0 to {limit}", "zh-CN": "x-decimal 须为 {{\"scale\": N}}，N 取 0 到 {limit}"},
    "definition.unreachable_state": {"en": "State {state} cannot be reached from the start", "zh-CN": "状态 {state} 从开始节点不可达"},
    "definition.bad_template": {"en": "The template cannot be used: {reason}", "zh-CN": "模板无法使用：{reason}"},
    "definition.unknown_placeholder": {"en": "Unknown placeholder {name} (use a field name or one of process, state, from, to, action, due_at, instance, record)", "zh-CN": "未知占位符 {name}（可用字段名或 process、state、from、to、action、due_at、instance、record）"},
    "definition.escalation_target_missing": {"en": "Escalation {do} needs a role or a user", "zh-CN": "升级方式 {do} 需要指定角色或用户"},
    "definition.unknown_action": {"en": "No action named {action} in this state", "zh-CN": "该状态没有名为 {action} 的操作"},
    "definition.reserved_action": {"en": "{action} is a runtime operation and cannot name an action", "zh-CN": "{action} 是运行时操作名，不能用作操作名"},
    "definition.nested_parallel": {"en": "Parallel state {state} inside a parallel branch is not supported", "zh-CN": "并行分支内不支持再嵌套并行状态 {state}"},
    "definition.branch_loops_to_split": {"en": "A branch leads back to its own parallel state {state}", "zh-CN": "分支又回到了其所属并行状态 {state}"},
    "definition.state_in_two_parallels": {"en": "State {state} belongs to branches of two parallel states", "zh-CN": "状态 {state} 同时属于两个并行状态的分支"},
    "definition.state_in_two_branches": {"en": "State {state} is reached from two branches of one parallel state", "zh-CN": "状态 {state} 可从同一并行状态的两个分支到达"},
    "definition.unknown_calendar": {"en": "Unknown calendar {name}; expected one of the report's calendars {expected}", "zh-CN": "未知的工作日历 {name}；应为报表 calendars 中的 {expected} 之一"},
    "definition.no_calendar": {"en": "An SLA in business hours needs a valid calendar", "zh-CN": "按工作时间计算的时限需要有效的工作日历"},
    # records
    "record.required": {"en": "This field is required", "zh-CN": "此字段为必填项"},
    "record.type": {"en": "Expected {expected}", "zh-CN": "应为 {expected} 类型"},
    "record.minimum": {"en": "Must be at least {limit}", "zh-CN": "不能小于 {limit}"},
    "record.maximum": {"en": "Must be at most {limit}", "zh-CN": "不能大于 {limit}"},
    "record.exclusive_minimum": {"en": "Must be greater than {limit}", "zh-CN": "必须大于 {limit}"},
    "record.exclusive_maximum": {"en": "Must be less than {limit}", "zh-CN": "必须小于 {limit}"},
    "record.min_length": {"en": "Must be at least {limit} characters", "zh-CN": "长度不能少于 {limit} 个字符"},
    "record.max_length": {"en": "Must be at most {limit} characters", "zh-CN": "长度不能超过 {limit} 个字符"},
    "record.pattern": {"en": "Does not match the required format", "zh-CN": "格式不正确"},
    "record.format": {"en": "Is not a valid {format}", "zh-CN": "不是有效的{format_zh}"},
    "record.enum": {"en": "Must be one of: {allowed}", "zh-CN": "必须是以下取值之一：{allowed}"},
    "record.const": {"en": "Must equal the fixed value", "zh-CN": "必须等于固定值"},
    "record.additional_properties": {"en": "Unknown field", "zh-CN": "未知字段"},
    "record.decimal_too_large": {"en": "At most {digits} digits are allowed before the decimal point", "zh-CN": "整数部分最多允许 {digits} 位"},
    "record.scale": {"en": "At most {scale} decimal places are allowed", "zh-CN": "最多允许 {scale} 位小数"},
    "record.multiple_of": {"en": "Must be a multiple of {limit}", "zh-CN": "必须是 {limit} 的倍数"},
    "record.min_items": {"en": "Needs at least {limit} items", "zh-CN": "至少需要 {limit} 项"},
    "record.max_items": {"en": "Allows at most {limit} items", "zh-CN": "最多允许 {limit} 项"},
    "record.unique_items": {"en": "Items must be unique", "zh-CN": "各项不能重复"},
    "record.schema": {"en": "Does not satisfy the form: {keyword}", "zh-CN": "不符合表单要求：{keyword}"},
    "record.ref_not_found": {"en": "No {form} record with this id", "zh-CN": "不存在该 id 的 {form} 记录"},
    "record.rule_error": {"en": "The rule {rule} could not be evaluated", "zh-CN": "规则 {rule} 无法计算"},
    "record.compute_error": {"en": "Field {field} could not be computed", "zh-CN": "字段 {field} 无法计算"},
    "record.no_process": {"en": "Form {form} names process {process}, which is not defined for it; upload the process first", "zh-CN": "表单 {form} 指定的流程 {process} 未定义或不属于该表单，请先上传流程"},
    "record.precondition_required": {"en": "Updating a record needs If-Match with the ETag it was read with", "zh-CN": "更新记录须在 If-Match 中提供读取时的 ETag"},
    "record.version_mismatch": {"en": "The record has changed since it was read (version {current}); reload and retry", "zh-CN": "记录在读取后已被修改（当前版本 {current}），请刷新后重试"},
    "record.idempotency_key_reused": {"en": "This Idempotency-Key was already used for a different request", "zh-CN": "该 Idempotency-Key 已用于另一个不同的请求"},
    "record.idempotency_key_invalid": {"en": "Idempotency-Key must be 1 to {limit} printable ASCII characters", "zh-CN": "Idempotency-Key 须为 1 到 {limit} 个可打印 ASCII 字符"},
    "process.stuck": {"en": "The process could not move on: {reason}", "zh-CN": "流程无法继续：{reason}"},
    # reports
    "report.bad_parameter": {"en": "Report parameter {name} is invalid", "zh-CN": "报表参数 {name} 无效"},
    "report.bad_drill": {"en": "The drill value is invalid: {reason}", "zh-CN": "钻取参数无效：{reason}"},
    "report.calendar_range": {"en": "Report {report} measures business hours over {first}–{last}, more than {years} years; narrow the data with filters", "zh-CN": "报表 {report} 按工作时间计算的数据跨越 {first}–{last} 年，超过 {years} 年；请用筛选条件缩小范围"},
    "report.stale": {"en": "Report {key} no longer matches form {form}; upload the report again", "zh-CN": "报表 {key} 与表单 {form} 的当前版本不再匹配，请重新上传报表"},
    "report.unknown_format": {"en": "Unknown format {format}; expected one of {expected}", "zh-CN": "未知格式 {format}；应为 {expected} 之一"},
    "report.timeout": {"en": "The report took longer than {seconds} seconds and was stopped; narrow it down or try again later", "zh-CN": "报表查询超过 {seconds} 秒已被中止，请缩小查询范围或稍后重试"},
    "report.out_of_memory": {"en": "The report needs more memory than the {limit} allowed; narrow it down", "zh-CN": "报表查询所需内存超过允许的 {limit}，请缩小查询范围"},
    "definition.bad_chart_channel": {"en": "Chart channel {channel} of a {mark} chart needs a {expected}", "zh-CN": "{mark} 图的通道 {channel} 需要一个指标（{expected}）"},
    "definition.unknown_member": {"en": "No dimension or measure named {name}", "zh-CN": "不存在名为 {name} 的维度或指标"},
    "definition.unknown_timezone": {"en": "Unknown time zone {timezone}", "zh-CN": "未知时区 {timezone}"},
    "definition.bad_value": {"en": "The value does not fit field {field} ({type})", "zh-CN": "该值与字段 {field}（{type}）的类型不符"},
    "definition.missing_part": {"en": "{part} is required here", "zh-CN": "此处缺少 {part}"},
    "definition.unexpected_part": {"en": "{part} is not allowed here", "zh-CN": "此处不允许 {part}"},
    "definition.unknown_process": {"en": "No process named {process}", "zh-CN": "不存在名为 {process} 的流程"},
    "definition.unknown_ref": {"en": "{field} does not go through a reference of the source", "zh-CN": "{field} 未经由数据源的引用字段"},
    "definition.tiers_not_ascending": {"en": "Tier bound {below} must be above the previous bound {previous}", "zh-CN": "分层上界 {below} 必须大于上一层的上界 {previous}"},
    "definition.bad_percentile": {"en": "p must be a number between 0 and 1 (exclusive), not {p}", "zh-CN": "p 必须是介于 0 与 1 之间（不含端点）的数，而不是 {p}"},
    "definition.unknown_parameter": {"en": "No parameter named {name}", "zh-CN": "不存在名为 {name} 的参数"},
    "definition.parameter_mismatch": {"en": "Parameter {name} ({type}) cannot be used with field {field} and operator {op}", "zh-CN": "参数 {name}（{type}）不能用于字段 {field} 与运算符 {op}"},
    "definition.compare_needs_bucket": {"en": "Dimension {name} has no time bucket to compare periods by", "zh-CN": "维度 {name} 没有时间粒度，无法做同期对比"},
    "definition.drill_too_short": {"en": "A drill path needs at least two dimensions", "zh-CN": "钻取路径至少需要两个维度"},
    "definition.unknown_report": {"en": "No report named {report}", "zh-CN": "不存在名为 {report} 的报表"},
    "definition.shared_parameter_missing": {"en": "Report {report} has no parameter {name}", "zh-CN": "报表 {report} 没有参数 {name}"},
    "definition.shared_parameter_mismatch": {"en": "Parameter {name} has type {type} in report {report} but {expected} in the others", "zh-CN": "参数 {name} 在报表 {report} 中类型为 {type}，在其他报表中为 {expected}"},
    "report.unknown_parameter": {"en": "Report {report} has no parameter {name}", "zh-CN": "报表 {report} 没有参数 {name}"},
    "report.missing_parameter": {"en": "Parameter {name} is required", "zh-CN": "缺少必填参数 {name}"},
    "report.parameter_type": {"en": "Parameter {name} must be {expected}", "zh-CN": "参数 {name} 应为 {expected}"},
    "dashboard.not_found": {"en": "No dashboard named {key}", "zh-CN": "不存在名为 {key} 的仪表盘"},
    # import
    "import.bad_source": {"en": "The file cannot be read: {detail}", "zh-CN": "无法读取文件：{detail}"},
    "import.bad_mapping": {"en": "The mapping file is invalid: {detail}", "zh-CN": "映射文件无效：{detail}"},
    # outbox (engine.notify)
    "outbox.http_status": {"en": "The receiver answered HTTP {status}", "zh-CN": "接收方返回 HTTP {status}"},
    "outbox.redirect_refused": {"en": "The receiver answered with a redirect (HTTP {status}); redirects are not followed", "zh-CN": "接收方返回重定向（HTTP {status}）；不跟随重定向"},
    "outbox.timeout": {"en": "The receiver did not answer within {seconds} seconds", "zh-CN": "接收方未在 {seconds} 秒内响应"},
    "outbox.connection_failed": {"en": "The receiver could not be reached ({reason})", "zh-CN": "无法连接接收方（{reason}）"},
    "outbox.dns_failed": {"en": "Host {host} could not be resolved", "zh-CN": "无法解析主机 {host}"},
    "outbox.url_invalid": {"en": "The endpoint URL cannot be read", "zh-CN": "端点 URL 无法解析"},
    "outbox.url_scheme": {"en": "Only http and https endpoints are allowed, not {scheme}", "zh-CN": "端点只允许 http 或 https，不允许 {scheme}"},
    "outbox.url_credentials": {"en": "An endpoint URL may not contain a user name or password", "zh-CN": "端点 URL 不得包含用户名或密码"},
    "outbox.host_not_allowed": {"en": "Host {host} is not on the outbound allow-list", "zh-CN": "主机 {host} 不在出站白名单中"},
    "outbox.address_not_allowed": {"en": "Host {host} leads to address {address}, which outgoing requests may not reach", "zh-CN": "主机 {host} 指向地址 {address}，出站请求不允许访问该地址"},
    "outbox.channel_not_configured": {"en": "Channel {channel} has no endpoint configured", "zh-CN": "通道 {channel} 未配置端点"},
    "outbox.unknown_channel": {"en": "There is no channel named {channel}", "zh-CN": "不存在名为 {channel} 的通道"},
    "outbox.bad_recipient": {"en": "The message has no usable recipient for channel {channel}", "zh-CN": "该消息没有可用于通道 {channel} 的接收人"},
    "outbox.bad_payload": {"en": "The stored message is unusable ({reason})", "zh-CN": "存储的消息不可用（{reason}）"},
    "outbox.unexpected": {"en": "Sending failed unexpectedly ({type}); see the worker log", "zh-CN": "发送意外失败（{type}），请查看 worker 日志"},
    "outbox.no_subscriber": {"en": "No event webhook subscribes to {topic}; nothing was sent", "zh-CN": "没有事件 Webhook 订阅 {topic}，未发送"},
    "outbox.bad_config": {"en": "Setting {setting} cannot be used: {reason}", "zh-CN": "配置项 {setting} 无法使用：{reason}"},
    "outbox.not_found": {"en": "No outbox message with id {id}", "zh-CN": "不存在 id 为 {id} 的外发消息"},
    "outbox.not_dead": {"en": "Message {id} is {status}; only dead letters can be retried", "zh-CN": "消息 {id} 当前为 {status} 状态；只有死信可以重试"},
    "outbox.forbidden": {"en": "Dead letters need one of the roles {roles}", "zh-CN": "查看或重试死信需要以下角色之一：{roles}"},
}


FORMAT_NAMES_ZH = {"date": "日期", "date-time": "日期时间", "time": "时间", "email": "电子邮箱地址",
                   "uri": "网址", "uuid": "UUID", "ipv4": "IPv4 地址", "ipv6": "IPv6 地址"}


def render_message(code: str, params: Mapping[str, Any], language: str) -> str:
    """Render ``code`` in ``language`` (falls back to en, then to the code itself)."""
    entry = CATALOGUE.get(code)
    if entry is None:
        return code
    template = entry.get(language) or entry["en"]
    shown = {key: _show(value) for key, value in params.items()}
    if "format" in params:
        shown["format_zh"] = FORMAT_NAMES_ZH.get(str(params["format"]), str(params["format"]))
    try:
        return template.format(**shown)
    except (KeyError, IndexError):
        return template


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)
