#!/usr/bin/env python3
"""Fake WeCom / Feishu / DingTalk group-robot webhooks for crm's tests.

Speaks the paths, signatures, limits and error shapes of docs/im-apis.md (sections 1.2,
2.2, 3.2, 4 and 5) so tests can be strict without internet access.  Listens on 127.0.0.1
only.  Usage: python3 test/fake_im.py --port N [--config FILE.json]; prints "ready <port>".

Config: {"wecom": {KEY: {}}, "feishu": {TOKEN: {"secret": S, "keywords": [..]}},
"dingtalk": {TOKEN: {"secret": S, "keywords": [..]}}, "rate_limits": true,
"dingtalk_unknown_token_errcode": 300005, "dingtalk_rate_errcode": 410100}.

Control endpoints (JSON):
  POST /_fake/config   merge robots per platform and the other keys above
  POST /_fake/clock    {"offset_seconds": N}: the fake's now is real time + N (absolute, not cumulative)
  POST /_fake/fault    {"platform", "http_status", "errcode", "delay_ms", "malformed", "count"}
  GET  /_fake/received [?drain=1]: accepted messages, oldest first
  POST /_fake/reset    clear records, faults, clock offset and rate windows (robots stay)
"""
import argparse
import base64
import hashlib
import hmac
import json
import threading
import time
import urllib.parse
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLATFORMS = ("wecom", "feishu", "dingtalk")
FEISHU_MAX_BODY = 20 * 1024  # "request body <= 20 KB" (2.2)
DINGTALK_MAX_BODY = 20000  # "message too long, exceed 20000 bytes" (3.2)


class Reject(Exception):
    """A platform error answer; robots answer errors with HTTP 200 (see the top of im-apis.md)."""

    def __init__(self, body):
        super().__init__(body)
        self.body = body


class State:
    """Everything the handlers share; one lock, since requests run on threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.robots = {p: {} for p in PLATFORMS}
        self.rate_limits = True
        # 5.3/5.4: real servers disagree with the documentation, so both codes are settable
        self.dingtalk_unknown_token_errcode = 300005
        self.dingtalk_rate_errcode = 410100
        self.reset()

    def reset(self):
        self.offset = 0.0
        self.faults = {}
        self.received = []
        self.windows = {}  # (platform, robot) -> deque of accepted arrival times
        self.blocked_until = {}  # DingTalk's 10-minute penalty, per robot

    def now(self):
        return time.time() + self.offset

    def configure(self, cfg):
        for p in PLATFORMS:
            if p in cfg:
                self.robots[p].update(cfg[p])
        for k in ("rate_limits", "dingtalk_unknown_token_errcode", "dingtalk_rate_errcode"):
            if k in cfg:
                setattr(self, k, cfg[k])

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


def feishu_error(code, msg):
    return Reject({"code": code, "msg": msg, "data": {}})


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
        # not in im-apis.md; 19001 is what real servers answer for an unknown hook token (?)
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


ROUTES = (  # (platform, path prefix, whole path must match, handler)
    ("wecom", "/cgi-bin/webhook/send", True, wecom),
    ("feishu", "/open-apis/bot/v2/hook/", False, feishu),
    ("dingtalk", "/robot/send", True, dingtalk),
)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as libcurl would use against the real hosts

    def reply(self, status, payload, raw=None):
        data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
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
        with STATE.lock:
            fault = STATE.take_fault(platform)
        if fault and fault.get("delay_ms"):
            time.sleep(fault["delay_ms"] / 1000)  # outside the lock: other calls go on
        if fault and (fault.get("malformed") or fault.get("http_status") or fault.get("errcode") is not None):
            status = fault.get("http_status") or 200
            if fault.get("malformed"):
                return self.reply(status, None, raw=b'{"errcode":0,"errm')
            if fault.get("errcode") is None:
                return self.reply(status, None, raw=f"<html><body>{status}</body></html>".encode())
            err = ERROR_SHAPE[platform](fault["errcode"], "fault injected")
            return self.reply(status, err.body)
        with STATE.lock:
            try:
                msgtype, answer = handler(STATE, robot, query, raw)
            except Reject as r:
                answer = r.body
            else:
                # only accepted messages count against the rate windows and get recorded
                now = STATE.now()
                STATE.windows.setdefault((platform, robot), deque()).append(now)
                STATE.received.append({"platform": platform, "robot": robot, "msgtype": msgtype,
                                       "body": raw.decode(), "received_at": now})
        self.reply(200, answer)

    def control(self, method, path, query, raw):
        if method == "GET" and path == "/_fake/received":
            with STATE.lock:
                out = list(STATE.received)
                if query.get("drain", ["0"])[0] not in ("", "0"):
                    STATE.received.clear()
            return self.reply(200, out)
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
    ap.add_argument("--config", help="JSON file declaring robots")
    args = ap.parse_args()
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            STATE.configure(json.load(f))
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"ready {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
