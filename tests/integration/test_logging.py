"""
The log lines an operator reads: one per transaction (id, connection,
client, sender, recipient count, size, backend, status, the backend's
reply, duration) and one per connection, as text and with
log_format = json, where each line is one JSON object with those as
fields. Driven with smtplib through mxgate to mxsink.
"""

import json
import os
import re
import smtplib

from harness import CRLF, MxTestCase, SCALE, start_mxgate, start_mxsink, gate_config, free_port, wait_until

BODY = b"Subject: log test" + CRLF + CRLF + b"hello" + CRLF


def file_lines(path):
    """The lines of a log file so far ([] before it exists)."""
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


class Logging(MxTestCase):
    def start(self, fmt, **server):
        self.sink = start_mxsink(self)
        server["log_format"] = fmt
        self.gate = start_mxgate(self, gate_config(free_port(), [self.sink], server=server))

    def send(self, rcpts=("b@example.test", "c@example.test")):
        s = smtplib.SMTP("127.0.0.1", self.gate.port, local_hostname="client.example.test",
                         timeout=30 * SCALE)
        self.addCleanup(s.close)
        self.assertEqual(s.sendmail("a@example.test", list(rcpts), BODY), {})
        s.quit()
        self.sink.assert_stored(self, 1)

    def lines(self, pred):
        """The gate's log lines, once pred(lines) holds: a connection's line is
        written when it closes, and the harness's own probe of the port is a
        connection too, so wait for the one wanted."""
        got = []

        def ready():
            got[:] = self.gate.log().decode("utf-8", "replace").splitlines()
            return pred(got)
        wait_until(ready, 10 * SCALE, what="log lines")
        return got

    def test_text_lines(self):
        self.start("text")
        self.send()
        lines = self.lines(lambda ls: any(" helo=client.example.test " in l for l in ls))
        txn = [l for l in lines if " msg id=" in l]
        self.assertEqual(len(txn), 1, lines)
        m = re.search(r' msg id=([0-9A-F]{16}) conn=([0-9A-F]{16}) client=127\.0\.0\.1:\d+ from=<a@example\.test> rcpts=2 '
                      r'size=(\d+) backend=b1 status=sent reply="250 [^"]*" ms=\d+$', txn[0])
        self.assertIsNotNone(m, txn[0])
        # ids: start time and worker (10 hex digits) shared, then the worker's counter
        self.assertEqual(m.group(1)[:10], m.group(2)[:10])
        self.assertGreater(int(m.group(1)[10:], 16), int(m.group(2)[10:], 16))
        # the size counts the client's DATA octets, the final ".\r\n" included
        self.assertEqual(int(m.group(3)), len(BODY) + 3)
        conn = [l for l in lines if " conn id=%s " % m.group(2) in l]
        self.assertEqual(len(conn), 1, lines)
        self.assertRegex(conn[0], r" conn id=\S+ client=127\.0\.0\.1:\d+ ")
        self.assertIn(" helo=client.example.test messages=1 ", conn[0])

    def test_json_lines(self):
        self.start("json")
        self.send()
        lines = self.lines(lambda ls: any('"helo":"client.example.test"' in l for l in ls))
        objs = []
        for l in lines:
            if not l.startswith("{"):
                continue    # sanitizer or harness output, never mxgate's
            objs.append(json.loads(l))
        self.assertTrue(objs, lines)
        for o in objs:
            self.assertRegex(o["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertIn(o["level"], ("error", "warn", "info", "debug"))
            self.assertIsInstance(o["msg"], str)
        txn = [o for o in objs if o.get("event") == "msg"]
        self.assertEqual(len(txn), 1, objs)
        t = txn[0]
        self.assertRegex(t["client"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(t["from"], "<a@example.test>")
        self.assertEqual(t["rcpts"], 2)
        self.assertIsInstance(t["size"], int)
        self.assertEqual(t["size"], len(BODY) + 3)
        self.assertEqual(t["backend"], "b1")
        self.assertEqual(t["status"], "sent")
        self.assertTrue(t["reply"].startswith("250 "), t)
        self.assertIsInstance(t["ms"], int)
        # the text form is still there whole
        self.assertTrue(t["msg"].startswith("msg id=%s " % t["id"]), t)
        conn = [o for o in objs if o.get("event") == "conn" and o["id"] == t["conn"]]
        self.assertEqual(len(conn), 1, objs)
        self.assertEqual(conn[0]["client"], t["client"])
        self.assertEqual(conn[0]["messages"], 1)
        self.assertEqual(conn[0]["helo"], "client.example.test")

    def test_json_quoted_sender(self):
        """A sender with quotes, a backslash and a space (RFC 5321 quoted-string) is one field, escaped."""
        self.start("json")
        c = self.gate.client()
        self.assertEqual(c.greeting().code, 220)
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.cmd('MAIL FROM:<"x\\"y z"@example.test>').code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@elsewhere.invalid>").code // 100, 5)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(BODY + b"." + CRLF)
        self.assertEqual(c.reply().code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.close()
        lines = self.lines(lambda ls: any('"helo":"client.example.test"' in l for l in ls))
        objs = [json.loads(l) for l in lines if l.startswith("{")]
        txn = [o for o in objs if o.get("event") == "msg"]
        self.assertEqual(len(txn), 1, lines)
        self.assertEqual(txn[0]["from"], "<\\x22x\\x5c\\x22y z\\x22@example.test>")
        self.assertEqual(txn[0]["rcpts"], 1)
        self.assertEqual(txn[0]["status"], "sent")

    def test_log_file_reopened_on_sighup(self):
        """log = FILE: lines go to the file, and SIGHUP after the file was moved (logrotate) starts a new one."""
        path = os.path.join(self.tmpdir, "mail.log")
        self.start("text", log=path)

        def txn_lines(p):
            return [l for l in file_lines(p) if " msg id=" in l]
        self.send()
        wait_until(lambda: len(txn_lines(path)) == 1, 10 * SCALE, what="first line in the log file")
        os.rename(path, path + ".1")
        self.gate.reload()
        wait_until(lambda: os.path.exists(path), 10 * SCALE, what="the log file opened again")
        self.sink.clear()
        self.send()
        wait_until(lambda: len(txn_lines(path)) == 1, 10 * SCALE, what="second line in the new file")
        self.assertEqual(len(txn_lines(path + ".1")), 1)
        self.assertNotEqual(txn_lines(path), txn_lines(path + ".1"))
        # nothing of it on stderr
        self.assertNotIn(b" msg id=", self.gate.log())

    def test_log_file_that_cannot_be_opened(self):
        """At start the lines stay on stderr; on SIGHUP they stay in the file already open. Both say why."""
        path = os.path.join(self.tmpdir, "mail.log")
        bad = os.path.join(self.tmpdir, "no-such-dir", "mail.log")
        self.start("text", log=bad)
        self.send()
        lines = self.lines(lambda ls: any(" msg id=" in l for l in ls))
        self.assertTrue(any("cannot open log %s" % bad in l for l in lines), lines)
        # now a file that works, then one that does not: the working one keeps the lines
        cfg = gate_config(self.gate.port, [self.sink], server={"log": path})
        self.gate.write_config(cfg)
        self.gate.reload()
        wait_until(lambda: os.path.exists(path), 10 * SCALE, what="the log file")
        cfg["server"]["log"] = bad
        self.gate.write_config(cfg)
        self.gate.reload()
        wait_until(lambda: any("cannot open log" in l for l in file_lines(path)), 10 * SCALE,
                   what="the reload's error in the open file")
        self.sink.clear()
        self.send()
        wait_until(lambda: any(" msg id=" in l for l in file_lines(path)), 10 * SCALE,
                   what="the next transaction in the open file")
