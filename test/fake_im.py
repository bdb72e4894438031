#!/usr/bin/env python3
"""Fake WeCom / Feishu / DingTalk group robots, app tokens, app messages and directories.

Speaks the paths, signatures, limits and error shapes of docs/im-platforms.md (sections 1 to 5)
so crm's tests can be strict without internet access.  Listens on 127.0.0.1
only.  Usage: python3 test/fake_im.py --port N [--config FILE.json]; prints "ready <port>".

Config: {"wecom": {KEY: {}}, "feishu": {TOKEN: {"secret": S, "keywords": [..]}},
"dingtalk": {TOKEN: {"secret": S, "keywords": [..]}}, "rate_limits": true,
"dingtalk_unknown_token_errcode": 300005, "dingtalk_rate_errcode": 410100,
"api_limits": {PLATFORM: calls per minute per open API, low for tests (5.4 item 14)},
"apps": {"wecom": {CORPID: {"secret": S, "agentid": N}}, "feishu": {APP_ID: {"secret": S}},
         "dingtalk": {APPKEY: {"secret": S, "agent_id": N}}},
"directory": {"departments": [{"id", "name", "parent_id", "leader"}],
              "users": [{"id", "name", "department_ids", "mobile", "superior_id", "active"}],
              "page_size": N}}.  The department without a parent_id is the root (WeCom and
DingTalk 1, Feishu "0" on the wire); department ids are integers; page_size caps every
directory page.

Control endpoints (JSON):
  POST /_fake/config   merge robots per platform and the other keys above
  POST /_fake/clock    {"offset_seconds": N, "frozen": B}: the fake's now is real time + N (absolute,
                       not cumulative); frozen, it stays at that instant until the next clock call,
                       so that rate windows in tests do not depend on how fast the machine is
  POST /_fake/fault    {"platform", "http_status", "errcode", "delay_ms", "malformed", "body_hex", "count"}
                       (body_hex: answer exactly these bytes, e.g. invalid UTF-8 or a proxy's page)
  GET  /_fake/received [?drain=1]: accepted messages, oldest first
  POST /_fake/invalidate_tokens {"platform"}: revoke its tokens now, as platforms may
  GET  /_fake/stats    {"token_requests": {platform: N}, "tokens_issued": {platform: N}}
  POST /_fake/reset    clear records, faults, clock offset, rate windows, tokens and stats
                       (robots, apps and directory stay)
"""
import argparse
import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLATFORMS = ("wecom", "feishu", "dingtalk")
FEISHU_MAX_BODY = 20 * 1024  # "request body <= 20 KB" (2.2)
DINGTALK_MAX_BODY = 20000  # "message too long, exceed 20000 bytes" (3.2)
TOKEN_LIFETIME = 7200  # all three platforms (1.5, 2.3, 3.4)
FEISHU_RENEW_BELOW = 1800  # Feishu issues a second token when less than 30 min remain (2.3)
NO_DIRECTORY = {"departments": [], "users": [], "page_size": None}


class Reject(Exception):
    """A platform error answer; robots answer errors with HTTP 200 (see the top of docs/im-platforms.md)."""

    def __init__(self, body, status=200, headers=None):
        super().__init__(body)
        self.body = body
        self.status = status
        self.headers = headers or {}


class State:
    """Everything the handlers share; one lock, since requests run on threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.robots = {p: {} for p in PLATFORMS}
        self.rate_limits = True
        # 5.3/5.4: real servers disagree with the documentation, so both codes are settable
        self.dingtalk_unknown_token_errcode = 300005
        self.dingtalk_rate_errcode = 410100
        self.api_limits = {}
        self.apps = {p: {} for p in PLATFORMS}
        self.directory = dict(NO_DIRECTORY)
        self.reset()

    def reset(self):
        self.offset = 0.0
        self.frozen_at = None
        self.faults = {}
        self.received = []
        self.windows = {}  # (platform, robot) -> deque of accepted arrival times
        self.blocked_until = {}  # DingTalk's 10-minute penalty, per robot
        self.tokens = {p: {} for p in PLATFORMS}  # token -> {"app", "expires", "revoked"}
        self.token_requests = {p: 0 for p in PLATFORMS}
        self.tokens_issued = {p: 0 for p in PLATFORMS}
        self.deliveries = {}  # (platform, app, user) -> deque of delivery times, for 5.4 item 13
        self.seen = {}  # idempotency key -> (time, answer): WeCom duplicate check, Feishu uuid
        self.notices = {}  # DingTalk work notices: (app, user, content, day) -> count
        self.tasks = {}  # DingTalk task_id -> send_result
        self.api_calls = {}  # open-API path -> deque of call times, for api_limits

    def now(self):
        return self.frozen_at if self.frozen_at is not None else time.time() + self.offset

    def configure(self, cfg):
        for p in PLATFORMS:
            if p in cfg:
                self.robots[p].update(cfg[p])
        for k in ("rate_limits", "dingtalk_unknown_token_errcode", "dingtalk_rate_errcode", "api_limits"):
            if k in cfg:
                setattr(self, k, cfg[k])
        for p in PLATFORMS:
            self.apps[p].update(cfg.get("apps", {}).get(p, {}))
        if "directory" in cfg:
            self.directory = dict(NO_DIRECTORY, **cfg["directory"])

    def take_fault(self, platform):
        f = self.faults.get(platform)
        if not f:
            return None
        f["count"] -= 1
        if f["count"] <= 0:
            del self.faults[platform]
        return f

    def recent(self, platform, robot, seconds, now):
        win = self.windows.setdefault((platform, robot), deque())
        while win and win[0] <= now - 60:
            win.popleft()
        return sum(1 for t in win if t > now - seconds)


STATE = State()


def wecom_error(code, msg):
    # every real WeCom errmsg carries this suffix (1.2); HTTP status is always 200
    return Reject({"errcode": code, "errmsg": f"{msg}, hint: [fake], from ip: 127.0.0.1, "
                   f"more info at https://open.work.weixin.qq.com/devtool/query?e={code}"})


def feishu_error(code, msg, status=200):
    # bots answer 200; open APIs (token, im/v1, contact/v3) answer 4xx (see the top of docs/im-platforms.md)
    return Reject({"code": code, "msg": msg, "data": {}}, status)


def dingtalk_error(code, msg):
    return Reject({"errcode": code, "errmsg": msg})


ERROR_SHAPE = {"wecom": wecom_error, "feishu": feishu_error, "dingtalk": dingtalk_error}
FEISHU_SIGN_FAIL = (19021, "sign match fail or timestamp is not within one hour from current time")


def parse_json(raw):
    """The body as a JSON object, or None if it is not UTF-8 JSON holding an object."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def strings_in(value):
    """Every string inside a JSON value, for keyword filters."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings_in(v)


def has_keyword(robot, message):
    keywords = robot.get("keywords") or []
    return not keywords or any(k in s for s in strings_in(message) for k in keywords)


def is_str_list(value):
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def hmac_b64(key, msg):
    return base64.b64encode(hmac.new(key.encode(), msg.encode(), hashlib.sha256).digest()).decode()


def wecom(state, key, query, raw):
    """1.2: no signature, the key is the credential; 20 messages a minute."""
    if key not in state.robots["wecom"]:
        raise wecom_error(93000, "invalid webhook url")
    body = parse_json(raw)
    if body is None:
        raise wecom_error(40058, "Invalid input invalid Request Parameter")
    msgtype = body.get("msgtype")
    limits = {"text": 2048, "markdown": 4096, "markdown_v2": 4096}
    if msgtype in limits:
        part = body.get(msgtype)
        if not isinstance(part, dict) or not isinstance(part.get("content", ""), str):
            raise wecom_error(40058, f"{msgtype} Invalid input invalid Request Parameter")
        content = part.get("content", "")
        if content == "":
            raise wecom_error(44004, "empty content")
        if len(content.encode()) > limits[msgtype]:
            raise wecom_error(40058, f"{msgtype}.content exceed max length {limits[msgtype]}. "
                              "Invalid input invalid Request Parameter")
        if msgtype == "text" and not all(is_str_list(part.get(k, []))
                                         for k in ("mentioned_list", "mentioned_mobile_list")):
            raise wecom_error(40058, "text Invalid input invalid Request Parameter")
    elif msgtype in ("image", "news", "file", "template_card"):
        # documented but unused by crm: only the shape of the envelope is checked
        if not isinstance(body.get(msgtype), dict):
            raise wecom_error(40058, f"{msgtype} Invalid input invalid Request Parameter")
    else:
        raise wecom_error(40008, "invalid message type")
    now = state.now()
    if state.rate_limits and state.recent("wecom", key, 60, now) >= 20:
        raise wecom_error(45009, "api freq out of limit")
    return msgtype, {"errcode": 0, "errmsg": "ok"}


def feishu(state, token, query, raw):
    """2.2: optional signature in the body, keywords, 100/min and 5/s."""
    robot = state.robots["feishu"].get(token)
    if robot is None:
        # not in docs/im-platforms.md; 19001 is what real servers answer for an unknown hook token (?)
        raise feishu_error(19001, "param invalid: incoming webhook access token invalid")
    if len(raw) > FEISHU_MAX_BODY:
        raise feishu_error(9499, "Bad Request")
    body = parse_json(raw)
    if body is None:
        raise feishu_error(9499, "Bad Request")
    if robot.get("secret"):
        ts, sign = body.get("timestamp"), body.get("sign")
        # the official examples send the timestamp as a string; an integer is accepted too
        if isinstance(ts, int) and not isinstance(ts, bool):
            ts = str(ts)
        if not (isinstance(ts, str) and ts.isdigit() and isinstance(sign, str)):
            raise feishu_error(*FEISHU_SIGN_FAIL)
        expected = hmac_b64(f"{ts}\n{robot['secret']}", "")
        if not hmac.compare_digest(sign, expected) or abs(state.now() - int(ts)) > 3600:
            raise feishu_error(*FEISHU_SIGN_FAIL)
    msgtype = body.get("msg_type")
    if not isinstance(msgtype, str):
        raise feishu_error(9499, "Bad Request")
    content = body.get("content")
    if msgtype == "text":
        ok = isinstance(content, dict) and isinstance(content.get("text"), str)
        message = content
    elif msgtype == "post":
        ok = isinstance(content, dict) and isinstance(content.get("post"), dict)
        message = content
    elif msgtype == "interactive":
        # the card sits at the top level, not under content
        message = body.get("card")
        ok = isinstance(message, dict)
    else:
        raise feishu_error(10208, f"msg type {msgtype} not support")
    if not ok:
        raise feishu_error(9499, "Bad Request")
    if not has_keyword(robot, message):
        raise feishu_error(19024, "Key Words Not Found")
    now = state.now()
    if state.rate_limits and (state.recent("feishu", token, 60, now) >= 100
                              or state.recent("feishu", token, 1, now) >= 5):
        raise feishu_error(11232, f"frequency limited psm[fake]appID[{token}]")
    return msgtype, {"code": 0, "msg": "success", "data": {}}


def dingtalk(state, token, query, raw):
    """3.2: optional signature in the query, keywords, 20/min then a 10-minute penalty."""
    robot = state.robots["dingtalk"].get(token)
    if robot is None:
        raise dingtalk_error(state.dingtalk_unknown_token_errcode, "token is not exist")
    now = state.now()
    if robot.get("secret"):
        # parse_qs decodes by standard rules: a raw "+" becomes a space and no longer matches
        ts, sign = query.get("timestamp", [""])[0], query.get("sign", [""])[0]
        if not ts.isdigit():
            raise dingtalk_error(310000, "invalid timestamp")
        if not hmac.compare_digest(sign, hmac_b64(robot["secret"], f"{ts}\n{robot['secret']}")):
            raise dingtalk_error(310000, "sign not match")
        if abs(now * 1000 - int(ts)) > 3600000:
            raise dingtalk_error(310000, "invalid timestamp")
    if len(raw) > DINGTALK_MAX_BODY:
        # the errcode was not captured (3.2); 460101 is what clients log for it (?)
        raise dingtalk_error(460101, "message too long, exceed 20000 bytes")
    body = parse_json(raw)
    if body is None:
        raise dingtalk_error(40035, "缺少参数 json")
    msgtype = body.get("msgtype")
    required = {"text": ("content",), "markdown": ("title", "text"),
                "link": ("title", "text", "messageUrl"), "actionCard": ("title", "text"),
                "feedCard": ()}
    if msgtype not in required:
        raise dingtalk_error(400105, "不支持的消息类型")
    part = body.get(msgtype)
    if not isinstance(part, dict) or not all(isinstance(part.get(f), str) and part[f]
                                             for f in required[msgtype]):
        raise dingtalk_error(40035, f"缺少参数 {msgtype}")
    if not has_keyword(robot, part):
        raise dingtalk_error(310000, "keywords not in content")
    if state.rate_limits:
        if state.blocked_until.get(token, 0) > now:
            raise dingtalk_error(state.dingtalk_rate_errcode, "发送速度太快而限流")
        if state.recent("dingtalk", token, 60, now) >= 20:
            state.blocked_until[token] = now + 600
            raise dingtalk_error(state.dingtalk_rate_errcode, "发送速度太快而限流")
    return msgtype, {"errcode": 0, "errmsg": "ok"}


# ---- app tokens (1.5, 2.3, 3.4, 5.2) ----

def issue_token(state, platform, app, prefix):
    """The app's live token, or a new one: WeCom and DingTalk reuse and extend it, Feishu
    reuses it until less than 30 minutes remain and then issues a second one (5.2 item 5)."""
    now = state.now()
    state.token_requests[platform] += 1
    live = [(t, v) for t, v in state.tokens[platform].items()
            if v["app"] == app and not v["revoked"] and v["expires"] > now]
    if live:
        token, entry = max(live, key=lambda tv: tv[1]["expires"])
        if platform != "feishu":
            # DingTalk: "re-fetching within validity returns the same token and extends it" (3.4);
            # WeCom is assumed to behave alike, since it also answers expires_in 7200 (?)
            entry["expires"] = now + TOKEN_LIFETIME
            return token, TOKEN_LIFETIME
        if entry["expires"] - now >= FEISHU_RENEW_BELOW:
            return token, int(entry["expires"] - now)
    token = prefix + secrets.token_hex(16)
    state.tokens[platform][token] = {"app": app, "expires": now + TOKEN_LIFETIME, "revoked": False}
    state.tokens_issued[platform] += 1
    return token, TOKEN_LIFETIME


def wecom_gettoken(state, req):
    corpid, secret = req.arg("corpid"), req.arg("corpsecret")
    app = state.apps["wecom"].get(corpid)
    if app is None:
        raise wecom_error(40013, "invalid corpid")
    if secret != app.get("secret"):
        raise wecom_error(40001, "invalid credential")
    token, ttl = issue_token(state, "wecom", corpid, "")
    return 200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl}


def feishu_gettoken(state, req):
    body = parse_json(req.raw) or {}
    app = state.apps["feishu"].get(body.get("app_id"))
    # the HTTP status of these two answers is not in docs/im-platforms.md; 400 as for other open-API errors (?)
    if app is None:
        raise feishu_error(10003, "invalid param", 400)  # 10003 for an unknown app_id (?)
    if body.get("app_secret") != app.get("secret"):
        raise feishu_error(10014, "app secret invalid", 400)
    token, ttl = issue_token(state, "feishu", body["app_id"], "t-")
    return 200, {"code": 0, "msg": "ok", "tenant_access_token": token, "expire": ttl}


def dingtalk_gettoken(state, req):
    appkey = req.arg("appkey")
    app = state.apps["dingtalk"].get(appkey)
    if app is None or req.arg("appsecret") != app.get("secret"):
        raise dingtalk_error(40096, "不合法的appKey或appSecret")
    token, ttl = issue_token(state, "dingtalk", appkey, "")
    return 200, {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl}


def token_app(state, platform, req):
    """The app behind the request's token, read only from where the platform reads it (5.2 item 6),
    or the platform's missing / invalid / expired answer (item 7)."""
    if platform == "feishu":
        auth = req.headers.get("Authorization", "")
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
    else:
        token = req.arg("access_token")
    entry = state.tokens[platform].get(token)
    valid = entry is not None and not entry["revoked"] and entry["expires"] > state.now()
    if valid:
        return entry["app"]
    if platform == "wecom":
        if not token:
            raise wecom_error(41001, "access_token missing")
        if entry is None:
            raise wecom_error(40014, "invalid access_token")
        raise wecom_error(42001, "access_token expired")
    if platform == "feishu":
        if not token:
            raise feishu_error(99991661, "Missing access token for authorization. "
                               "Please make a request with token attached.", 400)
        raise feishu_error(99991663, "Invalid access token for authorization. "
                           "Please make a request with token attached.", 400)
    if not token:
        raise dingtalk_oapi_error("40000", "access_token is blank")
    raise dingtalk_oapi_error("40014", "不合法的access_token")


def dingtalk_oapi_error(sub_code, sub_msg):
    return Reject({"errcode": 88, "sub_code": sub_code, "sub_msg": sub_msg,
                   "errmsg": f"ding talk error[subcode={sub_code},submsg={sub_msg}]",
                   "request_id": secrets.token_hex(8)})


# ---- app messages (1.3, 2.4, 3.3, 5.4 item 13, 5.5) ----

def is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def deliver(state, platform, app, users, limits, now):
    """The users still under every (count, seconds) limit of this app; they count one more delivery."""
    out = []
    for u in users:
        win = state.deliveries.setdefault((platform, app, u), deque())
        while win and win[0] <= now - max(s for _, s in limits):
            win.popleft()
        if not state.rate_limits or all(sum(1 for t in win if t > now - s) < n for n, s in limits):
            win.append(now)
            out.append(u)
    return out


def record(state, platform, target, msgtype, raw, now):
    state.received.append({"platform": platform, "target": target, "msgtype": msgtype,
                           "body": raw.decode(), "received_at": now})


def wecom_message(state, req):
    corpid = token_app(state, "wecom", req)
    body = parse_json(req.raw)
    if body is None:
        raise wecom_error(40058, "Invalid input invalid Request Parameter")
    if not is_int(body.get("agentid")):
        raise wecom_error(40058, "agentid Invalid input invalid Request Parameter")  # code (?)
    if body["agentid"] != state.apps["wecom"][corpid].get("agentid"):
        raise wecom_error(40056, "invalid agentid")  # not in docs/im-platforms.md (?)
    if not all(isinstance(body.get(k, ""), str) for k in ("touser", "toparty", "totag")):
        raise wecom_error(40058, "touser Invalid input invalid Request Parameter")
    if not any(body.get(k) for k in ("touser", "toparty", "totag")):
        raise wecom_error(40058, "touser, toparty and totag are all empty")  # code (?)
    msgtype = body.get("msgtype")
    limits = {"text": 2048, "markdown": 4096}  # 5.1 item 2
    if msgtype in limits:
        part = body.get(msgtype)
        if not isinstance(part, dict) or not isinstance(part.get("content"), str) or not part["content"]:
            raise wecom_error(40058, f"{msgtype} Invalid input invalid Request Parameter")
        if len(part["content"].encode()) > limits[msgtype]:
            raise wecom_error(45002, "content size out of limit")
    elif msgtype == "textcard":
        if not isinstance(body.get(msgtype), dict):
            raise wecom_error(40058, f"{msgtype} Invalid input invalid Request Parameter")
    else:
        raise wecom_error(40008, "invalid message type")
    now = state.now()
    answer = {"errcode": 0, "errmsg": "ok", "invaliduser": "", "invalidparty": "", "invalidtag": "",
              "msgid": secrets.token_hex(16), "response_code": secrets.token_hex(16)}
    if body.get("enable_duplicate_check") == 1:
        interval = body.get("duplicate_check_interval", 1800)
        if not is_int(interval):
            raise wecom_error(40058, "duplicate_check_interval Invalid input invalid Request Parameter")
        interval = min(interval, 14400)
        key = ("wecom", corpid, req.raw)
        if key in state.seen and state.seen[key][0] > now - interval:
            return 200, answer  # delivered once already
        state.seen[key] = (now, answer)
    users = [u for u in body.get("touser", "").split("|") if u]
    # 30 a minute and 1000 an hour per member and app; the excess vanishes with errcode 0
    kept = deliver(state, "wecom", body["agentid"], users, ((30, 60), (1000, 3600)), now)
    if kept or not users:
        target = "|".join(kept) or body.get("toparty") or body.get("totag")
        record(state, "wecom", target, msgtype, req.raw, now)
    return 200, answer


FEISHU_ID_TYPES = ("open_id", "user_id", "union_id", "email", "chat_id")


def feishu_invalid(detail):
    # 230001's msg wording beyond "ext=<detail>" is a guess (?)
    return feishu_error(230001, f"Your request contains an invalid request parameter, ext={detail}.", 400)


def feishu_message(state, req):
    app_id = token_app(state, "feishu", req)
    if req.arg("receive_id_type") not in FEISHU_ID_TYPES:
        raise feishu_invalid("invalid receive_id_type")
    body = parse_json(req.raw)
    if body is None:
        raise feishu_invalid("invalid request body")
    receive_id, msgtype, content = body.get("receive_id"), body.get("msg_type"), body.get("content")
    if not isinstance(receive_id, str) or not receive_id:
        raise feishu_invalid("invalid receive_id")
    if msgtype not in ("text", "post", "interactive"):
        raise feishu_invalid("invalid msg_type")
    if not isinstance(content, str):
        raise feishu_invalid("content is not a string")  # the webhook's object form (5.1 item 2)
    parsed = parse_json(content.encode())
    if parsed is None or (msgtype == "text" and not isinstance(parsed.get("text"), str)):
        raise feishu_invalid("invalid message content")
    if len(req.raw) > (150 if msgtype == "text" else 30) * 1024:
        raise feishu_invalid("message content too long")  # the code for oversize is not in the doc (?)
    uuid = body.get("uuid")
    if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
        raise feishu_invalid("invalid uuid")  # 230001 for a long uuid (?) (5.5 item 16)
    now = state.now()
    key = ("feishu", app_id, uuid)
    if uuid is not None and key in state.seen and state.seen[key][0] > now - 3600:
        return 200, state.seen[key][1]  # same message_id, delivered once
    if not deliver(state, "feishu", app_id, [receive_id], ((5, 1),), now):
        # the msg is a guess (?)
        raise feishu_error(230020, "The request frequency for this user or chat exceeds the limit.", 400)
    answer = {"code": 0, "msg": "success", "data": {
        "message_id": "om_" + secrets.token_hex(16), "root_id": "", "parent_id": "", "msg_type": msgtype,
        "create_time": str(int(now * 1000)), "update_time": str(int(now * 1000)), "deleted": False,
        "updated": False, "chat_id": "oc_" + secrets.token_hex(16),
        "sender": {"id": app_id, "id_type": "app_id", "sender_type": "app", "tenant_key": "fake"},
        "body": {"content": content}}}
    if uuid is not None:
        state.seen[key] = (now, answer)
    record(state, "feishu", receive_id, msgtype, req.raw, now)
    return 200, answer


DINGTALK_NOTICE_TYPES = ("text", "image", "voice", "file", "link", "oa", "markdown", "action_card")


def china_day(now):
    # "once a day": taken as the calendar day in China (UTC+8) (?)
    return int((now + 8 * 3600) // 86400)


def dingtalk_notice(state, req):
    appkey = token_app(state, "dingtalk", req)
    body = parse_json(req.raw)
    if body is None:
        raise dingtalk_error(40035, "缺少参数 json")
    agent_id = body.get("agent_id")
    if not is_int(agent_id) or agent_id != state.apps["dingtalk"][appkey].get("agent_id"):
        raise dingtalk_error(40035, "缺少参数 agent_id")  # code for a wrong agent_id (?)
    users = body.get("userid_list", "")
    if not isinstance(users, str) or not (users or body.get("dept_id_list") or body.get("to_all_user")):
        raise dingtalk_error(40035, "缺少参数 userid_list")
    users = [u for u in users.split(",") if u]
    if len(users) > 100:
        raise dingtalk_error(40035, "userid_list exceeds 100")  # code (?)
    msg = body.get("msg")
    msgtype = msg.get("msgtype") if isinstance(msg, dict) else None
    if msgtype not in DINGTALK_NOTICE_TYPES or not isinstance(msg.get(msgtype), dict):
        raise dingtalk_error(40035, "缺少参数 msg")
    content = json.dumps(msg, ensure_ascii=False, sort_keys=True)
    if len(json.dumps(msg, ensure_ascii=False).encode()) > 2048:
        raise dingtalk_error(40035, "msg exceeds 2048 bytes")  # code (?)
    now = state.now()
    day = china_day(now)
    delivered, forbidden = [], []
    for u in users:
        same = state.notices.get((appkey, u, content, day), 0)
        total = sum(n for (a, v, _, d), n in state.notices.items() if (a, v, d) == (appkey, u, day))
        if state.rate_limits and same:
            forbidden.append({"code": "143106", "count": 1, "userid": u})
        elif state.rate_limits and total >= 500:
            forbidden.append({"code": "143105", "count": 1, "userid": u})
        else:
            state.notices[(appkey, u, content, day)] = same + 1
            delivered.append(u)
    task_id = 100000000000 + len(state.tasks) + 1
    state.tasks[task_id] = (appkey, now, {
        "invalid_user_id_list": [], "forbidden_user_id_list": [f["userid"] for f in forbidden],
        "failed_user_id_list": [], "read_user_id_list": [], "unread_user_id_list": delivered,
        "invalid_dept_id_list": [], "forbidden_list": forbidden})
    if delivered or not users:
        target = ",".join(delivered) or body.get("dept_id_list") or "@all"
        record(state, "dingtalk", target, msgtype, req.raw, now)
    return 200, {"errcode": 0, "errmsg": "ok", "task_id": task_id, "request_id": secrets.token_hex(8)}


def dingtalk_sendresult(state, req):
    appkey = token_app(state, "dingtalk", req)
    body = parse_json(req.raw) or {}
    task = state.tasks.get(body.get("task_id"))
    # results older than 24 h are gone (3.1); the code for an unknown task is a guess (?)
    if task is None or task[0] != appkey or task[1] < state.now() - 86400:
        raise dingtalk_error(40035, "缺少参数 task_id")
    return 200, {"errcode": 0, "errmsg": "ok", "send_result": task[2], "request_id": secrets.token_hex(8)}


# ---- directories (1.4, 2.5, 3.5, 5.6) ----

def root_id(state):
    return next((d["id"] for d in state.directory["departments"] if not d.get("parent_id")), None)


def children(state, dept_id, recursive):
    out = []
    for d in state.directory["departments"]:
        if d.get("parent_id") == dept_id and d["id"] != dept_id:
            out.append(d)
            if recursive:
                out += children(state, d["id"], True)
    return out


def department(state, dept_id):
    return next((d for d in state.directory["departments"] if str(d["id"]) == str(dept_id)), None)


def members(state, dept_id, recursive=False):
    ids = {dept_id} | ({d["id"] for d in children(state, dept_id, True)} if recursive else set())
    return [u for u in state.directory["users"] if ids & set(u.get("department_ids", []))]


def page_cap(state, size):
    cap = state.directory.get("page_size")
    return min(size, cap) if cap else size


def bare_mobile(user):
    m = user.get("mobile", "")
    return m[3:] if m.startswith("+86") else m


def leader_of(dept):
    return [dept["leader"]] if dept.get("leader") else []


def wecom_user(state, u, brief):
    out = {"userid": u["id"], "name": u["name"],
           "department": [int(d) for d in u.get("department_ids", [])]}
    if not brief:
        out.update({"main_department": out["department"][0] if out["department"] else 0,
                    "direct_leader": [u["superior_id"]] if u.get("superior_id") else [],
                    "is_leader_in_dept": [int(department(state, d) is not None
                                              and department(state, d).get("leader") == u["id"])
                                          for d in u.get("department_ids", [])],
                    "mobile": bare_mobile(u), "gender": "0",
                    "status": 1 if u.get("active", True) else 4})
    return out


def wecom_dept_arg(state, req, name):
    raw = req.arg(name)
    dept = department(state, raw or root_id(state))
    if dept is None:
        raise wecom_error(60003, "department not found")  # WeCom's code is not in docs/im-platforms.md (?)
    return dept


def wecom_departments(state, req):
    token_app(state, "wecom", req)
    dept = wecom_dept_arg(state, req, "id")
    tree = [dept] + children(state, dept["id"], True)  # recursive from id (1.4)
    if req.path.endswith("simplelist"):
        return 200, {"errcode": 0, "errmsg": "ok", "department_id": [
            {"id": int(d["id"]), "parentid": int(d.get("parent_id") or 0), "order": i}
            for i, d in enumerate(tree)]}
    return 200, {"errcode": 0, "errmsg": "ok", "department": [
        {"id": int(d["id"]), "name": d["name"], "name_en": "", "department_leader": leader_of(d),
         "parentid": int(d.get("parent_id") or 0), "order": i} for i, d in enumerate(tree)]}


def wecom_users(state, req):
    token_app(state, "wecom", req)
    if not req.arg("department_id"):
        raise wecom_error(40058, "department_id Invalid input invalid Request Parameter")
    dept = wecom_dept_arg(state, req, "department_id")
    # no paging; fetch_child=1 recursive (1.4: accepted and honoured although unconfirmed)
    users = members(state, dept["id"], req.arg("fetch_child") == "1")
    brief = req.path.endswith("simplelist")
    return 200, {"errcode": 0, "errmsg": "ok", "userlist": [wecom_user(state, u, brief) for u in users]}


def wecom_list_id(state, req):
    token_app(state, "wecom", req)
    body = parse_json(req.raw)
    limit = body.get("limit", 10000) if body else None
    if body is None or not is_int(limit) or not 1 <= limit <= 10000:
        raise wecom_error(40058, "limit Invalid input invalid Request Parameter")
    rows = [{"userid": u["id"], "department": int(d)}
            for u in state.directory["users"] for d in u.get("department_ids", [])]
    start = opaque_offset(body.get("cursor", ""), "wecom",
                          wecom_error(40058, "cursor Invalid input invalid Request Parameter"))
    end = start + page_cap(state, limit)
    return 200, {"errcode": 0, "errmsg": "ok", "dept_user": rows[start:end],
                 "next_cursor": opaque_cursor("wecom", end) if end < len(rows) else ""}


def opaque_cursor(scope, offset):
    return base64.urlsafe_b64encode(f"{scope}|{offset}".encode()).decode()


def opaque_offset(cursor, scope, error):
    """The offset inside a cursor made by opaque_cursor for this scope; "" is the start."""
    if not cursor:
        return 0
    if not isinstance(cursor, str):
        raise error
    try:
        got, offset = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        if got == scope:
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise error


def feishu_dept_id(state, dept_id, id_type):
    if dept_id == root_id(state):
        return "0"
    return str(dept_id) if id_type == "department_id" else f"od-{dept_id}"


def feishu_dept_from(state, wire, id_type):
    if wire == "0":
        return department(state, root_id(state))
    if id_type != "department_id":
        wire = wire[3:] if wire.startswith("od-") else None
    return department(state, wire) if wire else None


def feishu_user_id(uid, id_type):
    return uid if id_type == "user_id" else f"ou_{uid}"


def feishu_page(state, req, scope, items):
    size = req.arg("page_size") or "10"
    if not size.isdigit() or not 1 <= int(size) <= 50:
        raise feishu_error(40011, "page size is invalid", 400)
    start = opaque_offset(req.arg("page_token"), scope,
                          feishu_error(40012, "page token is invalid error", 400))
    end = start + page_cap(state, int(size))
    data = {"has_more": end < len(items), "items": items[start:end]}
    if data["has_more"]:
        data["page_token"] = opaque_cursor(scope, end)
    return 200, {"code": 0, "msg": "success", "data": data}


def feishu_children(state, req):
    token_app(state, "feishu", req)
    id_type = req.arg("department_id_type") or "open_department_id"
    user_type = req.arg("user_id_type") or "open_id"
    wire = req.path.split("/")[-2]
    dept = feishu_dept_from(state, wire, id_type)
    if dept is None:
        raise feishu_error(40004, "no dept authority error", 403)  # unknown = outside the scope (?)
    items = [{"name": d["name"], "department_id": str(d["id"]), "open_department_id": f"od-{d['id']}",
              "parent_department_id": feishu_dept_id(state, d.get("parent_id"), id_type),
              "leader_user_id": feishu_user_id(d["leader"], user_type) if d.get("leader") else "",
              "status": {"is_deleted": False}}
             for d in children(state, dept["id"], req.arg("fetch_child") == "true")]
    return feishu_page(state, req, f"children:{wire}", items)


def feishu_users(state, req):
    token_app(state, "feishu", req)
    id_type = req.arg("department_id_type") or "open_department_id"
    user_type = req.arg("user_id_type") or "open_id"
    dept = feishu_dept_from(state, req.arg("department_id"), id_type)
    if dept is None:
        raise feishu_error(40004, "no dept authority error", 403)
    items = [{"user_id": u["id"], "open_id": f"ou_{u['id']}", "union_id": f"on_{u['id']}",
              "name": u["name"],
              "mobile": "+86" + bare_mobile(u) if bare_mobile(u) else "",
              "department_ids": [feishu_dept_id(state, d, id_type) for d in u.get("department_ids", [])],
              "leader_user_id": feishu_user_id(u["superior_id"], user_type) if u.get("superior_id") else "",
              "status": {"is_frozen": False, "is_resigned": False, "is_activated": u.get("active", True),
                         "is_exited": False, "is_unjoin": not u.get("active", True)}}
             for u in members(state, dept["id"])]  # direct members only (?)
    return feishu_page(state, req, f"users:{req.arg('department_id')}", items)


def dingtalk_dept_arg(state, body):
    dept = department(state, body.get("dept_id")) if body and is_int(body.get("dept_id")) else None
    if dept is None:
        raise dingtalk_error(60003, "部门不存在")
    return dept


def dingtalk_listsub(state, req):
    token_app(state, "dingtalk", req)
    dept = dingtalk_dept_arg(state, parse_json(req.raw))
    # one level, no paging (3.5)
    return 200, {"errcode": 0, "errmsg": "ok", "request_id": secrets.token_hex(8), "result": [
        {"dept_id": int(d["id"]), "name": d["name"], "parent_id": int(d["parent_id"]),
         "create_dept_group": False, "auto_add_user": False}
        for d in children(state, dept["id"], False)]}


def dingtalk_users(state, req):
    token_app(state, "dingtalk", req)
    body = parse_json(req.raw)
    dept = dingtalk_dept_arg(state, body)
    cursor, size = body.get("cursor", 0), body.get("size")
    # size max 100 is documented for listsimple only (?)
    if not is_int(cursor) or cursor < 0 or not is_int(size) or not 1 <= size <= 100:
        raise dingtalk_error(40035, "缺少参数 size")
    users = members(state, dept["id"])  # direct members only (3.5)
    end = cursor + page_cap(state, size)
    result = {"has_more": end < len(users), "list": [
        {"userid": u["id"], "unionid": f"un{u['id']}", "name": u["name"], "mobile": bare_mobile(u),
         "state_code": "86", "dept_id_list": [int(d) for d in u.get("department_ids", [])],
         "leader": dept.get("leader") == u["id"], "active": u.get("active", True),
         "admin": False, "boss": False} for u in users[cursor:end]]}
    if result["has_more"]:
        result["next_cursor"] = end
    return 200, {"errcode": 0, "errmsg": "ok", "result": result, "request_id": secrets.token_hex(8)}


def check_api_limit(state, platform, path):
    """5.4 item 14: a per-API, per-minute ceiling, off unless configured."""
    limit = state.api_limits.get(platform)
    if not limit:
        return
    now = state.now()
    win = state.api_calls.setdefault(path, deque())
    while win and win[0] <= now - 60:
        win.popleft()
    if len(win) >= limit:
        reset = max(1, int(win[0] + 60 - now + 0.999))
        if platform == "wecom":
            raise wecom_error(45009, "api freq out of limit")
        if platform == "feishu":
            raise Reject({"code": 99991400, "msg": "request trigger frequency limit"}, 429,
                         {"x-ogw-ratelimit-limit": str(limit), "x-ogw-ratelimit-reset": str(reset)})
        raise dingtalk_error(90002, "服务器繁忙")  # the errmsg is a guess (?)
    win.append(now)


APP_ROUTES = {  # path -> (platform, method, handler)
    "/cgi-bin/gettoken": ("wecom", "GET", wecom_gettoken),
    "/cgi-bin/message/send": ("wecom", "POST", wecom_message),
    "/cgi-bin/department/list": ("wecom", "GET", wecom_departments),
    "/cgi-bin/department/simplelist": ("wecom", "GET", wecom_departments),
    "/cgi-bin/user/list": ("wecom", "GET", wecom_users),
    "/cgi-bin/user/simplelist": ("wecom", "GET", wecom_users),
    "/cgi-bin/user/list_id": ("wecom", "POST", wecom_list_id),
    "/open-apis/auth/v3/tenant_access_token/internal": ("feishu", "POST", feishu_gettoken),
    "/open-apis/im/v1/messages": ("feishu", "POST", feishu_message),
    "/open-apis/contact/v3/departments/children": ("feishu", "GET", feishu_children),
    "/open-apis/contact/v3/users/find_by_department": ("feishu", "GET", feishu_users),
    "/gettoken": ("dingtalk", "GET", dingtalk_gettoken),
    "/topapi/message/corpconversation/asyncsend_v2": ("dingtalk", "POST", dingtalk_notice),
    "/topapi/message/corpconversation/getsendresult": ("dingtalk", "POST", dingtalk_sendresult),
    "/topapi/v2/department/listsub": ("dingtalk", "POST", dingtalk_listsub),
    "/topapi/v2/user/list": ("dingtalk", "POST", dingtalk_users),
}
FEISHU_CHILDREN = re.compile(r"^/open-apis/contact/v3/departments/[^/]+/children$")


class Request:
    def __init__(self, path, query, headers, raw):
        self.path, self.query, self.headers, self.raw = path, query, headers, raw

    def arg(self, name):
        return self.query.get(name, [""])[0]


ROUTES = (  # (platform, path prefix, whole path must match, handler)
    ("wecom", "/cgi-bin/webhook/send", True, wecom),
    ("feishu", "/open-apis/bot/v2/hook/", False, feishu),
    ("dingtalk", "/robot/send", True, dingtalk),
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl would use against the real hosts
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

    def reply(self, status, payload, raw=None, headers=None):
        data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.request_version == "HTTP/1.0" and not self.close_connection:
            # an HTTP/1.0 client (ab -k) keeps the connection only when told so
            self.send_header("Connection", "keep-alive")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        raw = self.read_body()
        if url.path.startswith("/_fake/"):
            return self.control(method, url.path, query, raw)
        path = url.path
        if FEISHU_CHILDREN.match(path):
            path = "/open-apis/contact/v3/departments/children"
        if path in APP_ROUTES:
            platform, wanted, handler = APP_ROUTES[path]
            if method != wanted:
                # 5.1 item 1 asks for a rejection but gives no shape (?)
                return self.reply(405, {"error": "method not allowed"})
            req = Request(url.path, query, self.headers, raw)

            def work():
                check_api_limit(STATE, platform, path)
                return handler(STATE, req)
            return self.answer(platform, work)
        for platform, prefix, exact, handler in ROUTES:
            if url.path == prefix or (not exact and url.path.startswith(prefix)):
                if method != "POST":
                    # the robot docs are silent on other methods
                    return self.reply(405, {"error": "method not allowed"})
                if platform == "wecom":
                    robot = query.get("key", [""])[0]
                elif platform == "feishu":
                    robot = url.path[len(prefix):]
                else:
                    robot = query.get("access_token", [""])[0]
                return self.robot(platform, handler, robot, query, raw)
        self.reply(404, {"error": "unknown path"})

    def robot(self, platform, handler, robot, query, raw):
        def work():
            msgtype, answer = handler(STATE, robot, query, raw)
            # only accepted messages count against the rate windows and get recorded
            now = STATE.now()
            STATE.windows.setdefault((platform, robot), deque()).append(now)
            STATE.received.append({"platform": platform, "robot": robot, "msgtype": msgtype,
                                   "body": raw.decode(), "received_at": now})
            return 200, answer
        self.answer(platform, work)

    def answer(self, platform, work):
        """Injected faults first; otherwise work() under the lock gives (HTTP status, body)."""
        with STATE.lock:
            fault = STATE.take_fault(platform)
        if fault and fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000)  # outside the lock: other calls go on
        if fault and (fault.get("malformed") or fault.get("http_status") or fault.get("errcode") is not None
                      or fault.get("body_hex") is not None):
            status = fault.get("http_status") or 200
            if fault.get("body_hex") is not None:
                return self.reply(status, None, raw=bytes.fromhex(fault["body_hex"]))
            if fault.get("malformed"):
                return self.reply(status, None, raw=b'{"errcode":0,"errm')
            if fault.get("errcode") is None:
                return self.reply(status, None, raw=f"<html><body>{status}</body></html>".encode())
            err = ERROR_SHAPE[platform](fault["errcode"], "fault injected")
            return self.reply(status, err.body)
        with STATE.lock:
            try:
                status, answer = work()
                headers = None
            except Reject as r:
                status, answer, headers = r.status, r.body, r.headers
        self.reply(status, answer, headers=headers)

    def control(self, method, path, query, raw):
        if method == "GET" and path == "/_fake/received":
            with STATE.lock:
                out = list(STATE.received)
                if query.get("drain", ["0"])[0] not in ("", "0"):
                    STATE.received.clear()
            return self.reply(200, out)
        if method == "GET" and path == "/_fake/stats":
            with STATE.lock:
                return self.reply(200, {"token_requests": STATE.token_requests,
                                        "tokens_issued": STATE.tokens_issued})
        if method != "POST":
            return self.reply(405, {"error": "method not allowed"})
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self.reply(400, {"error": "invalid JSON"})
        with STATE.lock:
            try:
                if path == "/_fake/reset":
                    STATE.reset()
                elif path == "/_fake/config":
                    STATE.configure(body)
                elif path == "/_fake/clock":
                    STATE.offset = float(body.get("offset_seconds", 0))
                    STATE.frozen_at = time.time() + STATE.offset if body.get("frozen") else None
                elif path == "/_fake/invalidate_tokens" and body.get("platform") in PLATFORMS:
                    for entry in STATE.tokens[body["platform"]].values():
                        entry["revoked"] = True
                elif path == "/_fake/fault" and body.get("platform") in PLATFORMS:
                    STATE.faults[body["platform"]] = dict(body, count=int(body.get("count", 1)))
                else:
                    return self.reply(404, {"error": "unknown control path or platform"})
            except (AttributeError, TypeError, ValueError) as e:
                # a malformed control request is the test's bug: say so instead of dropping the connection
                return self.reply(400, {"error": str(e)})
        self.reply(200, {"ok": True})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True, help="0 picks a free port")
    ap.add_argument("--config", help="JSON file declaring robots, apps and a directory")
    args = ap.parse_args()
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            STATE.configure(json.load(f))
    # a listen backlog of 5 (the default) drops the SYNs of a client opening 16 connections
    # at once, and each dropped one costs a second; real platforms accept them
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"ready {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
