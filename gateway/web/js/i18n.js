// Labels in Chinese (default) and English. t(key, {name: value}) fills {name}.
// Static labels in index.html carry data-i18n="key" (textContent), data-i18n-title,
// data-i18n-placeholder; everything else is built by the modules with t().
"use strict";

const zh = {
  "app.title": "现场通信网关 · 指挥中心",
  "lang.switch": "EN",
  "login.title": "登录",
  "login.user": "用户名",
  "login.password": "密码",
  "login.submit": "登录",
  "login.bad": "用户名或密码错误",
  "login.throttled": "失败次数过多，请 {s} 秒后再试",
  "login.expired": "登录已失效，请重新登录",
  "login.error": "登录失败：{detail}",
  "logout": "退出登录",
  "noauth": "未启用认证",
  "role.viewer": "观察员", "role.operator": "操作员", "role.admin": "管理员",
  "tab.devices": "设备", "tab.events": "事件", "tab.dispatch": "调度", "tab.audit": "审计",
  "section.map": "地图", "section.video": "视频墙", "section.devices": "设备", "section.events": "事件记录",
  "section.dispatch": "一键调度", "section.health": "套件状态", "section.audit": "审计记录",
  "kind.uav": "无人机", "kind.camera": "摄像机", "kind.bodycam": "单兵图传", "kind.radio": "电台",
  "kind.satcom": "卫星终端", "kind.power": "电源", "kind.network": "网络",
  "state.online": "在线", "state.offline": "离线", "state.stale": "失联",
  "health.ok": "正常", "health.degraded": "降级", "health.unknown": "未知",
  "health.devices": "设备 {online}/{total}",
  "health.battery": "电池剩余 {h} 小时", "health.battery_none": "电池 无下降趋势",
  "health.streams": "视频 {live}/{total}",
  "health.backlog": "积压 {n} 条", "health.backlog_age": "最早 {s} 秒前",
  "health.uplink": "上行", "health.uplink_up": "通", "health.uplink_down": "断", "health.active": "当前",
  "health.soc": "{id}: {soc}%", "health.updated": "更新于 {time}",
  "map.fit": "全部", "map.nopos": "无位置", "map.tiles": "底图",
  "map.tiles_prompt": "底图瓦片地址（如 http://tiles.local/{z}/{x}/{y}.png），留空则只显示经纬网格：",
  "video.add": "打开视频", "video.none": "没有视频流", "video.close": "关闭",
  "video.state.idle": "空闲", "video.state.connecting": "连接中", "video.state.waiting": "等待视频流",
  "video.state.playing": "播放中", "video.state.retrying": "重试中", "video.state.stopped": "已停止",
  "video.state.unauthorized": "未授权",
  "video.stream.live": "直播", "video.stream.connecting": "连接中", "video.stream.offline": "离线",
  "video.stats": "{codec} {w}×{h} {fps} 帧/秒 {kbps} kbit/s · 观看 {viewers}",
  "video.local": "本地解码 {frames} 帧 · {fps} 帧/秒 · {kbps} kbit/s",
  "device.none": "在地图或列表中选择一个设备",
  "device.status": "状态", "device.position": "最后位置", "device.last_seen": "最后通信",
  "device.battery": "电量", "device.signal": "信号", "device.alt": "高度", "device.heading": "航向",
  "device.speed": "速度", "device.fix": "定位", "device.source": "来源", "device.details": "详细状态",
  "device.commands": "命令", "device.streams": "视频", "device.never": "从未", "device.ago": "{s} 秒前",
  "device.ago_min": "{m} 分钟前", "device.driver": "驱动", "device.kind": "类型",
  "cmd.rtl": "返航", "cmd.land": "降落", "cmd.hold": "悬停", "cmd.goto": "飞往", "cmd.set_mode": "设置模式",
  "cmd.ptz_move": "云台转动", "cmd.ptz_stop": "云台停止", "cmd.ptz_preset": "转到预置位", "cmd.text": "发送短信",
  "arg.lat": "纬度", "arg.lon": "经度", "arg.alt_m": "高度 (米)", "arg.mode": "飞行模式", "arg.pan": "水平",
  "arg.tilt": "俯仰", "arg.zoom": "变焦", "arg.preset": "预置位", "arg.to": "接收方", "arg.text": "内容",
  "cmd.confirm.title": "确认命令",
  "cmd.confirm.body": "向 {device} 发送「{command}」？",
  "cmd.confirm.ok": "确认发送", "cmd.confirm.cancel": "取消",
  "cmd.history": "命令记录",
  "cmd.status.accepted": "已受理", "cmd.status.sent": "已发送", "cmd.status.done": "完成",
  "cmd.status.failed": "失败", "cmd.status.rejected": "被拒绝", "cmd.status.timeout": "超时",
  "cmd.error": "未能发送：{detail}", "cmd.status.sending": "发送中", "cmd.status.error": "未发送",
  "device.mode": "飞行模式",
  "events.info": "信息", "events.warning": "警告", "events.critical": "严重", "events.empty": "暂无事件",
  "events.device": "设备",
  "dispatch.text": "调度内容", "dispatch.targets": "目标", "dispatch.all": "全部队伍",
  "dispatch.selected": "所选", "dispatch.priority": "优先级", "dispatch.flash": "紧急", "dispatch.routine": "常规",
  "dispatch.send": "一键发送", "dispatch.recent": "最近调度", "dispatch.error": "调度失败：{detail}",
  "dispatch.nochoice": "请选择目标", "dispatch.hint": "Ctrl+Enter 发送",
  "delivery.queued": "排队", "delivery.sent": "已发送", "delivery.delivered": "已送达", "delivery.failed": "失败",
  "audit.verified": "哈希链校验通过", "audit.broken": "哈希链校验失败！", "audit.refresh": "刷新",
  "audit.time": "时间", "audit.user": "用户", "audit.address": "地址", "audit.action": "操作", "audit.target": "对象",
  "audit.detail": "详情", "audit.outcome": "结果",
  "sse.connected": "实时连接", "sse.lost": "实时连接中断，重连中",
  "settings.tiles_set": "底图已设置", "common.none": "—",
};

const en = {
  "app.title": "fieldgw · Command centre",
  "lang.switch": "中文",
  "login.title": "Log in",
  "login.user": "User name",
  "login.password": "Password",
  "login.submit": "Log in",
  "login.bad": "Wrong user name or password",
  "login.throttled": "Too many failed logins; try again in {s} s",
  "login.expired": "Your session has ended; please log in again",
  "login.error": "Login failed: {detail}",
  "logout": "Log out",
  "noauth": "no authentication",
  "role.viewer": "viewer", "role.operator": "operator", "role.admin": "admin",
  "tab.devices": "Devices", "tab.events": "Events", "tab.dispatch": "Dispatch", "tab.audit": "Audit",
  "section.map": "Map", "section.video": "Video wall", "section.devices": "Devices", "section.events": "Event log",
  "section.dispatch": "One-key dispatch", "section.health": "Kit health", "section.audit": "Audit log",
  "kind.uav": "drone", "kind.camera": "camera", "kind.bodycam": "body camera", "kind.radio": "radio",
  "kind.satcom": "satellite terminal", "kind.power": "power", "kind.network": "network",
  "state.online": "online", "state.offline": "offline", "state.stale": "not heard",
  "health.ok": "OK", "health.degraded": "degraded", "health.unknown": "unknown",
  "health.devices": "devices {online}/{total}",
  "health.battery": "battery {h} h left", "health.battery_none": "battery: no drain",
  "health.streams": "video {live}/{total}",
  "health.backlog": "backlog {n}", "health.backlog_age": "oldest {s} s",
  "health.uplink": "uplink", "health.uplink_up": "up", "health.uplink_down": "down", "health.active": "active",
  "health.soc": "{id}: {soc}%", "health.updated": "updated {time}",
  "map.fit": "All", "map.nopos": "no position", "map.tiles": "Basemap",
  "map.tiles_prompt": "Basemap tile URL (e.g. http://tiles.local/{z}/{x}/{y}.png); empty shows the lat/lon grid only:",
  "video.add": "Open video", "video.none": "no streams", "video.close": "Close",
  "video.state.idle": "idle", "video.state.connecting": "connecting", "video.state.waiting": "waiting for the stream",
  "video.state.playing": "playing", "video.state.retrying": "retrying", "video.state.stopped": "stopped",
  "video.state.unauthorized": "unauthorized",
  "video.stream.live": "live", "video.stream.connecting": "connecting", "video.stream.offline": "offline",
  "video.stats": "{codec} {w}×{h} {fps} fps {kbps} kbit/s · {viewers} viewers",
  "video.local": "decoded here {frames} frames · {fps} fps · {kbps} kbit/s",
  "device.none": "Pick a device on the map or in the list",
  "device.status": "Status", "device.position": "Last position", "device.last_seen": "Last heard",
  "device.battery": "Battery", "device.signal": "Signal", "device.alt": "Altitude", "device.heading": "Heading",
  "device.speed": "Speed", "device.fix": "Fix", "device.source": "Source", "device.details": "Status details",
  "device.commands": "Commands", "device.streams": "Video", "device.never": "never", "device.ago": "{s} s ago",
  "device.ago_min": "{m} min ago", "device.driver": "Driver", "device.kind": "Kind",
  "cmd.rtl": "Return home", "cmd.land": "Land", "cmd.hold": "Hold", "cmd.goto": "Go to", "cmd.set_mode": "Set mode",
  "cmd.ptz_move": "PTZ move", "cmd.ptz_stop": "PTZ stop", "cmd.ptz_preset": "PTZ preset", "cmd.text": "Send text",
  "arg.lat": "Latitude", "arg.lon": "Longitude", "arg.alt_m": "Altitude (m)", "arg.mode": "Flight mode", "arg.pan": "Pan",
  "arg.tilt": "Tilt", "arg.zoom": "Zoom", "arg.preset": "Preset", "arg.to": "To", "arg.text": "Text",
  "cmd.confirm.title": "Confirm command",
  "cmd.confirm.body": "Send “{command}” to {device}?",
  "cmd.confirm.ok": "Send", "cmd.confirm.cancel": "Cancel",
  "cmd.history": "Commands sent",
  "cmd.status.accepted": "accepted", "cmd.status.sent": "sent", "cmd.status.done": "done",
  "cmd.status.failed": "failed", "cmd.status.rejected": "rejected", "cmd.status.timeout": "timeout",
  "cmd.error": "Not sent: {detail}", "cmd.status.sending": "sending", "cmd.status.error": "not sent",
  "device.mode": "Flight mode",
  "events.info": "info", "events.warning": "warning", "events.critical": "critical", "events.empty": "no events yet",
  "events.device": "device",
  "dispatch.text": "Order", "dispatch.targets": "Targets", "dispatch.all": "All teams",
  "dispatch.selected": "Selected", "dispatch.priority": "Priority", "dispatch.flash": "flash", "dispatch.routine": "routine",
  "dispatch.send": "Send now", "dispatch.recent": "Recent dispatches", "dispatch.error": "Dispatch failed: {detail}",
  "dispatch.nochoice": "Choose targets", "dispatch.hint": "Ctrl+Enter sends",
  "delivery.queued": "queued", "delivery.sent": "sent", "delivery.delivered": "delivered", "delivery.failed": "failed",
  "audit.verified": "hash chain verified", "audit.broken": "hash chain BROKEN!", "audit.refresh": "Refresh",
  "audit.time": "Time", "audit.user": "User", "audit.address": "Address", "audit.action": "Action", "audit.target": "Target",
  "audit.detail": "Detail", "audit.outcome": "Outcome",
  "sse.connected": "live", "sse.lost": "live feed lost, reconnecting",
  "settings.tiles_set": "basemap set", "common.none": "—",
};

const DICTS = { zh, en };
let lang = localStorage.getItem("fieldgw.lang") === "en" ? "en" : "zh";
const listeners = [];

export function getLang() { return lang; }

export function setLang(next) {
  lang = next === "en" ? "en" : "zh";
  localStorage.setItem("fieldgw.lang", lang);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function onLangChange(fn) { listeners.push(fn); }

export function t(key, vars) {
  let s = DICTS[lang][key] ?? DICTS.zh[key] ?? key;
  if (vars) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in vars ? String(vars[k]) : m));
  return s;
}

// t() for a key that may not exist (a command, a status from a newer gateway): the raw value then
export function tOr(key, fallback) {
  return (key in DICTS[lang] || key in DICTS.zh) ? t(key) : String(fallback);
}

export function applyStatic(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("app.title");
}
