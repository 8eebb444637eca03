"""
harness.py - the integration tests' toolbox: real mxgate and mxsink
processes on free loopback ports, their config files, a byte-exact raw
SMTP client, and helpers to read what mxsink stored.

Stdlib only (Debian's python3, 3.11). Rules kept here so that every test
follows them:
  - only 127.0.0.1 / ::1 are bound or connected to; ports are picked free;
  - every wait is bounded in count and in time;
  - every process started is stopped by pid in the test's cleanup
    (SIGTERM, bounded wait, then SIGKILL), and its log is checked for
    sanitizer reports (make asan).

Environment: MXGATE_BUILD is the folder with mxgate, mxsink and mxload
(default: build/ at the repository root); MXGATE_SANITIZED=1 makes the
waits longer; MXGATE_KEEP=1 keeps each test's temp folder.
"""

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("MXGATE_BUILD") or os.path.join(ROOT, "build"))
SANITIZED = os.environ.get("MXGATE_SANITIZED") == "1"
# Sanitized builds run several times slower: stretch the waits.
SCALE = 3.0 if SANITIZED else 1.0

HOSTNAME = "mx.test.example"
SAN_RE = re.compile(rb"ERROR: AddressSanitizer|runtime error:|LeakSanitizer")
CRLF = b"\r\n"


def binary(name):
    """Path of BUILD/name; fails the test (not skips) when it is missing."""
    path = os.path.join(BUILD, name)
    if not os.access(path, os.X_OK):
        raise AssertionError("%s is missing (MXGATE_BUILD=%s): run make" % (path, BUILD))
    return path


_ports_handed_out = set()


def free_port(family=socket.AF_INET):
    """A TCP port that was free a moment ago on the loopback address.

    Never the same port twice in one test process: the kernel may offer a
    just-closed port again, and two listeners of one config would then clash."""
    host = "::1" if family == socket.AF_INET6 else "127.0.0.1"
    for _ in range(100):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _ports_handed_out:
            break
    _ports_handed_out.add(port)
    return port


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until true; returns its value or raises after timeout."""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout * SCALE, what))
        time.sleep(interval)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def strip_first_received(data):
    """
    Returns (received_header, rest): the first header of data, which must be
    a Received: header (the one mxgate prepends), with its continuation
    lines (starting with SP or HTAB), and the bytes after it.
    """
    if not data[:9].lower() == b"received:":
        raise AssertionError("stored message does not start with a Received: header: %r" % data[:200])
    pos = 0
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            raise AssertionError("Received: header not terminated: %r" % data[:500])
        pos = nl + 1
        if pos >= len(data) or data[pos:pos + 1] not in (b" ", b"\t"):
            return data[:pos], data[pos:]


def bare_cr_lf_nul(data):
    """First offset of a bare CR, a bare LF or a NUL in data, or -1."""
    if b"\0" in data:
        return data.index(b"\0")
    m = re.search(rb"\r(?!\n)|(?<!\r)\n", data)
    return m.start() if m else -1


def header_value(msg, name):
    """Value of the first header NAME in the header block of msg, or None."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(.*(?:\r\n[ \t].*)*)", head)
    if not m:
        return None
    return re.sub(rb"\r\n[ \t]+", b" ", m.group(1)).strip()


# ---------------------------------------------------------------- processes

# Every child still running, by pid: kill_all() is the last resort when the
# runner itself is told to stop (the children are in sessions of their own,
# so a signal to the runner does not reach them).
LIVE = {}


def kill_all():
    for pid in list(LIVE):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        LIVE.pop(pid, None)


class Proc:
    """
    A child process with stdout and stderr in LOGDIR/NAME.log. Registered
    with the test for cleanup: stopped by pid, log checked for sanitizer
    reports.
    """

    def __init__(self, test, name, argv, port=None, host="127.0.0.1", env=None,
                 wait=True, start_timeout=10.0):
        self.test = test
        self.name = name
        self.argv = [str(a) for a in argv]
        self.port = port
        self.host = host
        self.log_path = os.path.join(test.tmpdir, "%s.log" % name)
        # a second process of the same name gets its own log
        n = 2
        while os.path.exists(self.log_path):
            self.log_path = os.path.join(test.tmpdir, "%s.%d.log" % (name, n))
            n += 1
        self.logf = open(self.log_path, "wb")
        e = dict(os.environ)
        if env:
            e.update(env)
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.logf,
                                      stderr=subprocess.STDOUT, env=e, cwd=ROOT,
                                      start_new_session=True)
        self.pid = self.popen.pid
        LIVE[self.pid] = self.name
        test.addCleanup(self.cleanup)
        test.register_log(self.log_path)
        if wait and port is not None:
            self.wait_port(start_timeout)

    def wait_port(self, timeout=10.0):
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise AssertionError("%s exited with status %s before listening on %s:%s; log:\n%s"
                                     % (self.name, self.popen.returncode, self.host, self.port,
                                        self.log_tail()))
            if port_open(self.port, self.host, timeout=0.5):
                return
            time.sleep(0.05)
        raise AssertionError("%s not listening on %s:%s after %.0fs; log:\n%s"
                             % (self.name, self.host, self.port, timeout * SCALE, self.log_tail()))

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Exit status, or raises AssertionError if still running after timeout."""
        try:
            rc = self.popen.wait(timeout=timeout * SCALE)
            LIVE.pop(self.pid, None)
            return rc
        except subprocess.TimeoutExpired:
            raise AssertionError("%s (pid %d) still running after %.1fs"
                                 % (self.name, self.pid, timeout * SCALE))

    def stop(self, timeout=10.0):
        """SIGTERM, bounded wait, then SIGKILL. Returns the exit status."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=timeout * SCALE)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(timeout=10)
        LIVE.pop(self.pid, None)
        return self.popen.returncode

    def log(self):
        try:
            self.logf.flush()
        except ValueError:
            pass
        with open(self.log_path, "rb") as f:
            return f.read()

    def log_tail(self, n=4000):
        return self.log()[-n:].decode("utf-8", "replace")

    def cleanup(self):
        self.stop()
        self.logf.close()
        log = self.log()
        m = SAN_RE.search(log)
        if m:
            raise AssertionError("sanitizer report in %s's log %s:\n%s"
                                 % (self.name, self.log_path,
                                    log[max(0, m.start() - 200):m.start() + 6000].decode("utf-8", "replace")))


def check_sanitizer_output(test, what, data):
    """Fails test if data (a child's output) holds a sanitizer report."""
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    m = SAN_RE.search(data or b"")
    if m:
        test.fail("sanitizer report in %s:\n%s" % (what, data[max(0, m.start() - 200):m.start() + 6000]
                                                   .decode("utf-8", "replace")))


class Sink:
    """A running mxsink (see start_mxsink)."""

    def __init__(self, proc, port, store_dir):
        self.proc = proc
        self.port = port
        self.store_dir = store_dir
        self.address = "127.0.0.1:%d" % port

    def messages(self):
        """
        What mxsink stored so far: a list of dicts {path, data, env, mail_from,
        rcpts}, sorted by file modification time then name. A message is the
        file that has the name of an '.env' file minus '.env'.
        """
        if not self.store_dir:
            raise AssertionError("mxsink was started without --store")
        out = []
        for dirpath, _dirs, files in os.walk(self.store_dir):
            names = set(files)
            for fn in files:
                if not fn.endswith(".env") or fn.startswith("."):
                    continue
                base = fn[:-4]
                if base not in names:
                    # tolerate NAME.env + NAME.<ext>
                    cands = [x for x in names if x != fn and not x.endswith(".env")
                             and x.split(".", 1)[0] == base.split(".", 1)[0]
                             and not x.startswith(".") and not x.endswith(".tmp")]
                    if len(cands) != 1:
                        continue  # message file not there yet
                    base = cands[0]
                mpath = os.path.join(dirpath, base)
                epath = os.path.join(dirpath, fn)
                try:
                    with open(epath, "rb") as f:
                        env = f.read()
                    st = os.stat(mpath)
                    with open(mpath, "rb") as f:
                        data = f.read()
                except FileNotFoundError:
                    continue
                mail_from, rcpts = parse_env(env)
                out.append({"path": mpath, "data": data, "env": env, "mail_from": mail_from,
                            "rcpts": rcpts, "mtime": st.st_mtime_ns})
        out.sort(key=lambda m: (m["mtime"], m["path"]))
        return out

    def count(self):
        return len(self.messages())

    def wait_messages(self, n, timeout=10.0):
        """Waits until at least n messages are stored, then returns them all."""
        wait_until(lambda: self.count() >= n, timeout, what="%d message(s) in %s" % (n, self.store_dir))
        # let a message being written finish
        time.sleep(0.05)
        return self.messages()

    def assert_stored(self, test, n, settle=0.5):
        """Waits for n messages and checks that no more arrive within settle s."""
        if n:
            self.wait_messages(n)
        time.sleep(settle * SCALE)
        msgs = self.messages()
        test.assertEqual(len(msgs), n, "expected %d stored message(s), found %d: %s"
                         % (n, len(msgs), [m["path"] for m in msgs]))
        return msgs

    def stop_and_totals(self):
        """
        Stops mxsink and returns the counters of its exit line
        ("mxsink: connections=N messages=N ... bare_lf=N ..."), as a dict
        of ints; {} when it printed none.
        """
        self.proc.stop()
        totals = {}
        for line in self.proc.log().splitlines():
            if line.startswith(b"mxsink:") and b"=" in line:
                found = dict(re.findall(rb"([a-z_]+)=(\d+)", line))
                if found:
                    totals = {k.decode(): int(v) for k, v in found.items()}
        return totals

    def clear(self):
        for entry in os.listdir(self.store_dir):
            p = os.path.join(self.store_dir, entry)
            if os.path.isdir(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)


def parse_env(env):
    """(mail_from, [rcpt, ...]) from the text of a .env sidecar."""
    mail_from = None
    rcpts = []
    for line in env.splitlines():
        m = re.match(rb"(?i)MAIL FROM:\s*<([^>]*)>", line)
        if m:
            mail_from = m.group(1).decode("utf-8", "replace")
            continue
        m = re.match(rb"(?i)RCPT TO:\s*<([^>]*)>", line)
        if m:
            rcpts.append(m.group(1).decode("utf-8", "replace"))
    return mail_from, rcpts


def start_mxsink(test, store=True, extra_args=(), port=None, name="mxsink"):
    """Starts BUILD/mxsink on a free 127.0.0.1 port; returns a Sink."""
    port = port or free_port()
    argv = [binary("mxsink"), "--listen", "127.0.0.1:%d" % port]
    store_dir = None
    if store:
        store_dir = tempfile.mkdtemp(prefix="store-", dir=test.tmpdir)
        argv += ["--store", store_dir]
    argv += list(extra_args)
    proc = Proc(test, name, argv, port=port)
    return Sink(proc, port, store_dir)


# ---------------------------------------------------------------- mxgate

def render_config(sections):
    """INI text from {"server": {...}, "listener in": {...}, ...} (insertion order)."""
    lines = []
    for sect, keys in sections.items():
        lines.append("[%s]" % sect)
        for k, v in keys.items():
            if isinstance(v, (list, tuple)):
                v = ", ".join(str(x) for x in v)
            lines.append("%s = %s" % (k, v))
        lines.append("")
    return "\n".join(lines)


def backend_section(b):
    """A [backend] section's keys from a Sink, a port, 'host:port' or a dict."""
    if isinstance(b, Sink):
        return {"address": b.address}
    if isinstance(b, int):
        return {"address": "127.0.0.1:%d" % b}
    if isinstance(b, str):
        return {"address": b}
    if isinstance(b, dict):
        d = dict(b)
        addr = d.get("address")
        if isinstance(addr, Sink):
            d["address"] = addr.address
        elif isinstance(addr, int):
            d["address"] = "127.0.0.1:%d" % addr
        return d
    raise TypeError("backend: %r" % (b,))


def gate_config(port, backends, relay_domains="example.test", workers=1, server=None,
                listener=None, hostname=HOSTNAME):
    """
    A config dict for one listener on 127.0.0.1:port relaying to backends
    (named b1, b2, ...). server and listener add or override keys.
    """
    srv = {
        "hostname": hostname,
        "workers": workers,
        "max_message_size": "50M",
        "drain_timeout": "10s",
        "log_level": "info",
    }
    srv.update(server or {})
    lst = {"listen": "127.0.0.1:%d" % port, "relay_domains": relay_domains}
    lst.update(listener or {})
    cfg = {"server": srv, "listener in": lst}
    for i, b in enumerate(backends):
        cfg["backend b%d" % (i + 1)] = backend_section(b)
    return cfg


class Gate:
    """A running mxgate (see start_mxgate)."""

    def __init__(self, proc, port, config_path):
        self.proc = proc
        self.port = port
        self.config_path = config_path

    def write_config(self, config):
        text = render_config(config) if isinstance(config, dict) else config
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    def reload(self):
        self.proc.signal(signal.SIGHUP)

    def log(self):
        return self.proc.log()

    def client(self, **kw):
        """A RawSMTP connected to this mxgate (greeting not yet read)."""
        return RawSMTP(self.port, test=self.proc.test, **kw)


def start_mxgate(test, config, port=None, wait=True, name="mxgate", extra_args=(), workers=None):
    """
    Writes config (INI text, or a dict of sections: see gate_config) to
    TMPDIR/NAME.conf and starts BUILD/mxgate -c FILE; waits for port (taken
    from the first listener's listen when not given). workers, when given,
    sets [server] workers of a dict config.
    """
    if isinstance(config, dict) and workers is not None:
        config = dict(config)
        config["server"] = dict(config.get("server", {}), workers=workers)
    text = render_config(config) if isinstance(config, dict) else config
    if port is None:
        m = re.search(r"(?m)^\s*listen\s*=\s*(?:127\.0\.0\.1|\[::1\]):(\d+)", text)
        if not m:
            raise AssertionError("no loopback listen address in the config")
        port = int(m.group(1))
    path = os.path.join(test.tmpdir, "%s.conf" % name)
    with open(path, "w") as f:
        f.write(text)
    proc = Proc(test, name, [binary("mxgate"), "-c", path] + list(extra_args), port=port, wait=wait)
    return Gate(proc, port, path)


def start_gate_and_sink(test, relay_domains="example.test", server=None, listener=None,
                        workers=1, sink_args=()):
    """The common pair: mxsink --store, and mxgate in front of it."""
    sink = start_mxsink(test, store=True, extra_args=sink_args)
    port = free_port()
    gate = start_mxgate(test, gate_config(port, [sink], relay_domains=relay_domains,
                                          workers=workers, server=server, listener=listener))
    return gate, sink


# ---------------------------------------------------------------- raw SMTP

class Reply:
    def __init__(self, code, lines, raw):
        self.code = code      # int
        self.lines = lines    # [bytes] text after "NNN-" / "NNN "
        self.raw = raw        # bytes as received

    @property
    def text(self):
        return b"\n".join(self.lines).decode("utf-8", "replace")

    def __repr__(self):
        return "Reply(%r)" % self.raw


class Closed(Exception):
    """The peer closed the connection."""


class RawSMTP:
    """
    A byte-exact SMTP client: send() writes exactly the bytes given,
    reply() reads one whole (possibly multi-line) reply. Every read has a
    deadline.
    """

    def __init__(self, port, host="127.0.0.1", timeout=10.0, test=None, source=None):
        """source: bind to this local address first (another loopback address, for per-client limits)."""
        self.timeout = timeout * SCALE
        self.sock = socket.create_connection((host, port), timeout=self.timeout,
                                             source_address=(source, 0) if source else None)
        self.buf = b""
        self.closed = False
        if test is not None:
            test.addCleanup(self.close)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("no complete reply in time; have %r" % self.buf[-300:])
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.closed = True
            raise Closed("connection closed; unparsed: %r" % self.buf)
        self.buf += chunk

    def reply(self, timeout=None):
        deadline = time.monotonic() + (timeout * SCALE if timeout else self.timeout)
        lines = []
        start = 0
        while True:
            nl = self.buf.find(b"\n", start)
            if nl < 0:
                self._fill(deadline)
                continue
            line = self.buf[start:nl + 1]
            start = nl + 1
            if len(line) < 4 or not line[:3].isdigit() or line[3:4] not in (b" ", b"-", b"\r", b"\n"):
                raise AssertionError("malformed reply line %r" % line)
            lines.append(line[4:].rstrip(b"\r\n"))
            if line[3:4] != b"-":
                raw = self.buf[:start]
                self.buf = self.buf[start:]
                return Reply(int(line[:3]), lines, raw)

    def replies(self, n, timeout=None):
        return [self.reply(timeout) for _ in range(n)]

    def cmd(self, line, timeout=None):
        """Sends line + CRLF (line as given, no checks) and returns the reply."""
        if isinstance(line, str):
            line = line.encode()
        self.send(line + CRLF)
        return self.reply(timeout)

    def greeting(self):
        return self.reply()

    def ehlo(self, name="client.example.test"):
        return self.cmd("EHLO " + name)

    def expect_closed(self, timeout=5.0):
        """True when the peer closes within timeout (any data before is discarded)."""
        deadline = time.monotonic() + timeout * SCALE
        while time.monotonic() < deadline:
            try:
                self._fill(deadline)
            except Closed:
                return True
            except (socket.timeout, TimeoutError):
                return False
            except OSError:
                return True
        return False

    def pending(self, wait=0.3):
        """Bytes that arrive within wait s without sending anything."""
        deadline = time.monotonic() + wait * SCALE
        try:
            while time.monotonic() < deadline:
                self._fill(deadline)
        except (socket.timeout, TimeoutError, Closed, OSError):
            pass
        data, self.buf = self.buf, b""
        return data

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def dot_stuff(body):
    """Wire form of body (CRLF lines): leading dots doubled, then CRLF.CRLF."""
    stuffed = re.sub(rb"(?m)^\.", b"..", body)
    if stuffed and not stuffed.endswith(CRLF):
        stuffed += CRLF
    return stuffed + b".\r\n"


def make_message(subject="test", body=b"hello\r\n", msgid=None, extra_headers=b""):
    msgid = msgid or ("<%s@client.example.test>" % os.urandom(8).hex())
    return (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: " + subject.encode() +
            b"\r\nMessage-ID: " + msgid.encode() + b"\r\n" + extra_headers + b"\r\n" + body)


# ---------------------------------------------------------------- test base

class MxTestCase(unittest.TestCase):
    """Gives each test a temp folder (self.tmpdir) and tracks process logs."""

    def setUp(self):
        self.tmpdir = tempfile.mkdtemp(prefix="mxgate-%s-" % self._testMethodName)
        self.logs = []
        if os.environ.get("MXGATE_RUNNER") != "1" and os.environ.get("MXGATE_KEEP") != "1":
            # runner.py removes it after printing logs of failures
            self.addCleanup(shutil.rmtree, self.tmpdir, True)

    def register_log(self, path):
        self.logs.append(path)

    def open_session(self, gate, ehlo=True):
        c = gate.client()
        g = c.greeting()
        self.assertEqual(g.code, 220, g)
        if ehlo:
            r = c.ehlo()
            self.assertEqual(r.code, 250, r)
        return c

    def send_message(self, c, mail_from, rcpts, data_wire, expect_final=250):
        """MAIL/RCPT/DATA one command at a time, then data_wire as is."""
        r = c.cmd("MAIL FROM:<%s>" % mail_from)
        self.assertEqual(r.code, 250, r)
        for rc in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rc)
            self.assertEqual(r.code, 250, r)
        r = c.cmd("DATA")
        self.assertEqual(r.code, 354, r)
        c.send(data_wire)
        r = c.reply(timeout=60)
        if expect_final is not None:
            self.assertEqual(r.code, expect_final, r)
        return r

    def assertDeliveredExact(self, msg, body, mail_from=None, rcpts=None):
        received, rest = strip_first_received(msg["data"])
        self.assertIn(HOSTNAME.encode(), received, "Received: header does not name mxgate's hostname")
        if rest != body:
            self.fail("stored bytes differ from sent: sha256 %s != %s, %d vs %d bytes; first "
                      "difference at %d: stored %r sent %r"
                      % (sha256(rest), sha256(body), len(rest), len(body), first_diff(rest, body),
                         rest[first_diff(rest, body):][:80], body[first_diff(rest, body):][:80]))
        self.assertEqual(sha256(rest), sha256(body))
        if mail_from is not None:
            self.assertEqual(msg["mail_from"], mail_from)
        if rcpts is not None:
            self.assertEqual(sorted(msg["rcpts"]), sorted(rcpts))


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


# ---------------------------------------------------------------- issue 4 helpers
# Clients from other loopback addresses, a minimal Redis client, and real
# redis-server, haproxy and Postfix instances of the test's own.

class RawSMTPFrom(RawSMTP):
    """A RawSMTP whose socket is bound to source (e.g. "127.0.0.2") before connecting."""

    def __init__(self, port, source, host="127.0.0.1", timeout=10.0, test=None):
        super().__init__(port, host=host, timeout=timeout, test=test, source=source)


def enhanced(reply):
    """The enhanced status code at the start of the reply's first line, or None."""
    m = re.match(rb"([245]\.\d{1,3}\.\d{1,3})\b", reply.lines[0])
    return m.group(1).decode() if m else None


def smtp_from(test, port, source="127.0.0.1", host=None, timeout=10.0):
    """A RawSMTP to host:port (default: loopback of source's family) from source."""
    if host is None:
        host = "::1" if ":" in source else "127.0.0.1"
    return RawSMTPFrom(port, source, host=host, timeout=timeout, test=test)


class ThreadedBackend:
    """
    A TCP server on a free 127.0.0.1 port for scripted backends: each
    connection is served by self.serve(sock, *self.accepted(sock)) on a
    thread of its own. Subclasses set their state, then call
    super().__init__(test); the test's cleanup stops it and closes every socket.
    """

    def __init__(self, test):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.socks = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self.accept_loop, daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def accepted(self, sock):
        """Called under self.lock for a new connection: extra arguments for serve()."""
        return ()

    def serve(self, sock, *args):
        raise NotImplementedError

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.lsock.close()
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass

    @staticmethod
    def recv(sock):
        """The next bytes from sock; None after its timeout with nothing (check self.stop), b"" at EOF."""
        try:
            return sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return None

    def accept_loop(self):
        while not self.stop.is_set():
            try:
                s, _ = self.lsock.accept()
            except (socket.timeout, TimeoutError):
                continue
            except OSError:
                return
            with self.lock:
                self.socks.append(s)
                args = self.accepted(s)
            threading.Thread(target=self.serve, args=(s,) + tuple(args), daemon=True).start()


def check_config_file(test, cfg):
    """`mxgate -t -c` on cfg (a dict of sections or the text): (exit status, output, text, path)."""
    text = render_config(cfg) if isinstance(cfg, dict) else cfg
    path = os.path.join(test.tmpdir, "t.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([binary("mxgate"), "-t", "-c", path], capture_output=True,
                       timeout=20 * SCALE, stdin=subprocess.DEVNULL)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    check_sanitizer_output(test, "mxgate -t", out)
    return p.returncode, out, text, path


def config_line(text, section, key=None):
    """The line number of [section] (key None) or of its "key =" line in a rendered config."""
    cur = None
    for n, line in enumerate(text.split("\n"), 1):
        if line.startswith("["):
            cur = line[1:line.index("]")]
            if cur == section and not key:
                return n
        elif cur == section and key and line.startswith(key + " ="):
            return n
    raise AssertionError("no [%s] %s in\n%s" % (section, key, text))


def resp_encode(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class RedisClient:
    """A blocking RESP2 client for tests (inspect keys, FLUSHALL, ...)."""

    def __init__(self, port=None, password=None, unix=None, timeout=5.0):
        if unix:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout * SCALE)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SCALE)
        self.buf = b""
        if password:
            self.cmd("AUTH", password)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RedisError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise AssertionError("bad RESP line %r" % line)

    def cmd(self, *args):
        self.sock.sendall(resp_encode(*args))
        return self._read()

    def keys(self, pattern="*"):
        """Every key matching pattern (SCAN, bounded)."""
        out, cursor = [], b"0"
        for _ in range(10000):
            cursor, batch = self.cmd("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
            out += batch
            if cursor in (b"0", 0):
                return out
        raise AssertionError("SCAN did not finish")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class RedisError(Exception):
    pass


class Redis:
    """A running redis-server (see start_redis); stop() and start() keep its port."""

    def __init__(self, test, port, password, unix_path, name):
        self.test = test
        self.port = port
        self.password = password
        self.unix_path = unix_path
        self.name = name
        self.proc = None

    @property
    def address(self):
        return "unix:%s" % self.unix_path if self.unix_path else "127.0.0.1:%d" % self.port

    def start(self, timeout=10.0):
        argv = ["redis-server", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "notice"]
        if self.unix_path:
            argv += ["--port", "0", "--unixsocket", self.unix_path, "--unixsocketperm", "700"]
        else:
            argv += ["--port", str(self.port)]
        if self.password:
            argv += ["--requirepass", self.password]
        self.proc = Proc(self.test, self.name, argv, wait=False)
        deadline = time.monotonic() + timeout * SCALE
        last = None
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise AssertionError("redis-server exited with %s; log:\n%s"
                                     % (self.proc.popen.returncode, self.proc.log_tail()))
            try:
                c = self.client()
                try:
                    if c.cmd("PING") == "PONG":
                        return self
                finally:
                    c.close()
            except (OSError, Closed, RedisError) as e:
                last = e
            time.sleep(0.05)
        raise AssertionError("redis-server did not answer PING in %.0fs (%r); log:\n%s"
                             % (timeout * SCALE, last, self.proc.log_tail()))

    def stop(self):
        if self.proc is not None:
            self.proc.stop()

    def kill(self):
        """SIGKILL, then waits for the pid to go."""
        if self.proc is not None and self.proc.alive():
            self.proc.signal(signal.SIGKILL)
            self.proc.wait(10)

    def client(self):
        return RedisClient(port=self.port, password=self.password, unix=self.unix_path)

    def cmd(self, *args):
        c = self.client()
        try:
            return c.cmd(*args)
        finally:
            c.close()

    def keys(self, pattern="*"):
        c = self.client()
        try:
            return c.keys(pattern)
        finally:
            c.close()


def start_redis(test, password=None, unix=False, name="redis"):
    """
    A redis-server of the test's own (no persistence) on a free 127.0.0.1
    port, or on a unix socket in test.tmpdir (unix=True); waits for PING.
    Stopped by pid in the test's cleanup.
    """
    port = 0 if unix else free_port()
    unix_path = os.path.join(test.tmpdir, "%s.sock" % name) if unix else None
    r = Redis(test, port, password, unix_path, name)
    return r.start()


def redis_section(redis, **kw):
    """A [redis] section for a Redis of start_redis; kw adds or overrides keys."""
    d = {"address": redis.address, "key_prefix": "mxt%s:" % os.urandom(3).hex(), "timeout": "200ms"}
    if redis.password:
        d["password"] = redis.password
    d.update(kw)
    return d


def start_haproxy(test, frontend_port, backend_port, send_proxy="send-proxy", name="haproxy",
                  frontend_port6=None):
    """
    haproxy (TCP mode, nbthread 1) on 127.0.0.1:frontend_port (and
    [::1]:frontend_port6 when given) forwarding to 127.0.0.1:backend_port
    with send_proxy ("send-proxy" | "send-proxy-v2" | ""). Config in
    test.tmpdir; run in the foreground (-db), stopped by pid.
    """
    bind6 = "    bind [::1]:%d\n" % frontend_port6 if frontend_port6 else ""
    cfg = os.path.join(test.tmpdir, "%s.cfg" % name)
    with open(cfg, "w") as f:
        f.write("global\n"
                "    nbthread 1\n"
                "    maxconn 256\n"
                "defaults\n"
                "    mode tcp\n"
                "    timeout connect 5s\n"
                "    timeout client 60s\n"
                "    timeout server 60s\n"
                "frontend fe\n"
                "    bind 127.0.0.1:%d\n"
                "%s"
                "    default_backend be\n"
                "backend be\n"
                "    server s1 127.0.0.1:%d %s\n" % (frontend_port, bind6, backend_port, send_proxy))
    r = subprocess.run(["haproxy", "-c", "-f", cfg], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        raise AssertionError("haproxy -c refused %s:\n%s" % (cfg, r.stdout.decode("utf-8", "replace")))
    return Proc(test, name, ["haproxy", "-db", "-f", cfg], port=frontend_port)


POSTFIX = "/usr/sbin/postfix"


class Postfix:
    """A private Postfix instance (see start_postfix_smtpd)."""

    def __init__(self, test, conf_dir, base, port, pid):
        self.test = test
        self.conf_dir = conf_dir
        self.base = base
        self.port = port
        self.pid = pid
        self.maillog = os.path.join(base, "maillog")

    def log(self):
        try:
            with open(self.maillog, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    def stop(self):
        subprocess.run([POSTFIX, "-c", self.conf_dir, "stop"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=30)
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        LIVE.pop(self.pid, None)


def postfix_skip_reason():
    """None when a private Postfix can be run here, else why not."""
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    if not os.access(POSTFIX, os.X_OK):
        return "%s is missing" % POSTFIX
    try:
        import pwd
        import grp
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except (KeyError, ImportError):
        return "no postfix user or postdrop group"
    return None


def start_postfix_smtpd(test, port=None, relay_domains="example.test", extra_main=None,
                        extra_services=()):
    """
    A private Postfix instance under test.tmpdir/postfix whose smtpd listens
    on 127.0.0.1:port, trusts 127.0.0.0/8 for XFORWARD and XCLIENT, relays
    relay_domains and discards every message (discard transport); logs to
    its own maillog file (Postfix.log()). Started with `postfix -c DIR
    start`, stopped in the test's cleanup with `postfix -c DIR stop` and
    then by the master's pid. Needs root. extra_main adds main.cf
    settings; extra_services adds master.cf rows (tuples of its 8 fields).
    """
    import pwd
    port = port or free_port()
    base = os.path.join(test.tmpdir, "postfix")
    conf, queue, data = (os.path.join(base, d) for d in ("conf", "queue", "data"))
    for d in (conf, queue, data):
        os.makedirs(d)
    # the postfix user must reach the queue: open the path down from the temp folder
    for d in (test.tmpdir, base):
        os.chmod(d, 0o755)
    pw = pwd.getpwnam("postfix")
    os.chown(data, pw.pw_uid, pw.pw_gid)
    main = {
        "compatibility_level": "3.6", "queue_directory": queue, "data_directory": data,
        "command_directory": "/usr/sbin", "daemon_directory": "/usr/lib/postfix/sbin",
        "meta_directory": "/etc/postfix", "shlib_directory": "/usr/lib/postfix",
        "mail_owner": "postfix", "setgid_group": "postdrop",
        "myhostname": "backend.test.example", "mydomain": "test.example",
        "inet_interfaces": "127.0.0.1", "inet_protocols": "ipv4", "mydestination": "",
        "relay_domains": relay_domains, "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
        "smtpd_authorized_xforward_hosts": "127.0.0.0/8",
        "smtpd_authorized_xclient_hosts": "127.0.0.0/8",
        "default_transport": "discard:test", "relay_transport": "discard:test",
        "maillog_file": os.path.join(base, "maillog"), "maillog_file_prefixes": base,
        "alias_maps": "", "alias_database": "", "biff": "no", "smtputf8_enable": "no",
        "smtpd_peername_lookup": "no",
    }
    main.update(extra_main or {})
    with open(os.path.join(conf, "main.cf"), "w") as f:
        f.write("".join("%s = %s\n" % kv for kv in main.items()))
    services = [
        ("127.0.0.1:%d" % port, "inet", "n", "-", "n", "-", "-", "smtpd"),
        ("pickup", "unix", "n", "-", "n", "60", "1", "pickup"),
        ("cleanup", "unix", "n", "-", "n", "-", "0", "cleanup"),
        ("qmgr", "unix", "n", "-", "n", "300", "1", "qmgr"),
        ("rewrite", "unix", "-", "-", "n", "-", "-", "trivial-rewrite"),
        ("bounce", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("defer", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("trace", "unix", "-", "-", "n", "-", "0", "bounce"),
        ("verify", "unix", "-", "-", "n", "-", "1", "verify"),
        ("proxymap", "unix", "-", "-", "n", "-", "-", "proxymap"),
        ("error", "unix", "-", "-", "n", "-", "-", "error"),
        ("retry", "unix", "-", "-", "n", "-", "-", "error"),
        ("discard", "unix", "-", "-", "n", "-", "-", "discard"),
        ("anvil", "unix", "-", "-", "n", "-", "1", "anvil"),
        ("scache", "unix", "-", "-", "n", "-", "1", "scache"),
        ("postlog", "unix-dgram", "n", "-", "n", "-", "1", "postlogd"),
    ] + list(extra_services)
    with open(os.path.join(conf, "master.cf"), "w") as f:
        f.write("".join(" ".join(s) + "\n" for s in services))
    r = subprocess.run([POSTFIX, "-c", conf, "start"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    pidfile = os.path.join(queue, "pid", "master.pid")
    pid = None
    try:
        with open(pidfile) as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        pass
    if r.returncode != 0 or pid is None:
        log = b""
        try:
            with open(os.path.join(base, "maillog"), "rb") as f:
                log = f.read()
        except OSError:
            pass
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise AssertionError("postfix -c %s start failed (%d): %s\nmaillog:\n%s"
                             % (conf, r.returncode, r.stdout.decode("utf-8", "replace"),
                                log.decode("utf-8", "replace")))
    pf = Postfix(test, conf, base, port, pid)
    LIVE[pid] = "postfix master"
    test.addCleanup(pf.stop)
    test.register_log(pf.maillog)
    deadline = time.monotonic() + 15 * SCALE
    while not port_open(port):
        if time.monotonic() >= deadline:
            raise AssertionError("postfix smtpd not listening on 127.0.0.1:%d; maillog:\n%s"
                                 % (port, pf.log().decode("utf-8", "replace")))
        time.sleep(0.1)
    return pf


def proxy_v1(src, dst=None, sport=5555, dport=25):
    """A PROXY protocol v1 header line for a TCP4 or TCP6 connection."""
    fam = "TCP6" if ":" in src else "TCP4"
    dst = dst or ("::1" if ":" in src else "127.0.0.1")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


PP2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, dst=None, sport=5555, dport=25, command=1, tlvs=b""):
    """A PROXY protocol v2 header (command 1 = PROXY, 0 = LOCAL) over TCP."""
    if ":" in src:
        dst = dst or "::1"
        fam = 0x21
        addrs = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        dst = dst or "127.0.0.1"
        fam = 0x11
        addrs = socket.inet_pton(socket.AF_INET, src) + socket.inet_pton(socket.AF_INET, dst)
    body = addrs + sport.to_bytes(2, "big") + dport.to_bytes(2, "big") + tlvs
    return PP2_SIG + bytes([0x20 | command, fam]) + len(body).to_bytes(2, "big") + body


def align_window(window_s, redis=False):
    """
    Waits until a burst of events will fall in one fixed rate window: mxgate
    numbers windows as now // window, now being CLOCK_MONOTONIC in ms for
    the embedded store and the Redis server's TIME (wall clock) with Redis.
    Short windows (<= 5 s): waits for the first 0.3 s of one; longer ones:
    only keeps 2 s clear of the end. Bounded by the window length.
    """
    clock = time.time if redis else time.monotonic
    w = float(window_s)
    deadline = time.monotonic() + w + 1
    while time.monotonic() < deadline:
        phase = clock() % w
        if (w <= 5 and phase < 0.3) or (w > 5 and phase < w - 2.0):
            return
        time.sleep(min(w - phase + 0.005, 0.5))
