"""
Byte-exact delivery through mxgate to mxsink --store, checked with
SHA-256 on the part of each stored message after mxgate's Received:
header: Python's smtplib, swaks and curl as clients.
"""

import os
import random
import smtplib
import subprocess
import time
import unittest

from harness import (CRLF, HOSTNAME, MxTestCase, bare_cr_lf_nul, dot_stuff, make_message,
                     sha256, start_gate_and_sink, strip_first_received, SCALE)


def lines(*ls):
    return b"".join(l + CRLF for l in ls)


class SmtplibDelivery(MxTestCase):
    SINK_ARGS = ()      # mxsink offers CHUNKING: small messages are held for BDAT

    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(self, sink_args=self.SINK_ARGS)

    def smtp(self):
        s = smtplib.SMTP("127.0.0.1", self.gate.port, local_hostname="client.example.test",
                         timeout=60 * SCALE)
        self.addCleanup(s.close)
        return s

    def deliver_one(self, msg, mail_options=(), rcpts=("b@example.test",)):
        s = self.smtp()
        refused = s.sendmail("a@example.test", list(rcpts), msg, mail_options=list(mail_options))
        self.assertEqual(refused, {})
        s.quit()
        m = self.sink.assert_stored(self, 1)[0]
        # smtplib adds CRLF to a message that does not end with one
        expect = msg if msg.endswith(CRLF) else msg + CRLF
        self.assertDeliveredExact(m, expect, "a@example.test", list(rcpts))
        self.assertEqual(bare_cr_lf_nul(m["data"]), -1)
        return m

    def test_received_header_first(self):
        m = self.deliver_one(make_message(body=b"plain\r\n"))
        received, _ = strip_first_received(m["data"])
        self.assertTrue(received.endswith(CRLF))
        self.assertIn(b"by " + HOSTNAME.encode(), received)

    def test_leading_dots(self):
        body = lines(b".starts with a dot", b"..two dots", b"...", b".", b"..", b"a.b",
                     b". space", b".\t", b"end")
        self.deliver_one(make_message(subject="dots", body=body))

    def test_lone_dot_lines(self):
        body = lines(b"first", b".", b"second", b".", b".", b"", b".", b"last")
        self.deliver_one(make_message(subject="lone dots", body=body))

    def test_last_line_lone_dot(self):
        self.deliver_one(make_message(subject="last lone dot", body=lines(b"x", b".")))

    def test_998_octet_lines(self):
        rnd = random.Random(998)
        l1 = bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(998))
        l2 = b"." + l1[:997]  # stuffed to 999 + CRLF on the wire: still legal
        body = lines(l1, l2, l1, b"short")
        self.assertEqual(len(l1) + 2, 1000)
        self.deliver_one(make_message(subject="long lines", body=body))

    def test_8bit(self):
        rnd = random.Random(8)
        eight = bytes(range(0x80, 0x100))
        body = lines(b"8bit: " + eight,
                     "Grüße aus Köln, ça va? 日本語".encode("utf-8"),
                     bytes(rnd.choice(range(0x80, 0x100)) for _ in range(500)),
                     b"\t tab and control \x01\x07\x1b\x7f bytes")
        msg = make_message(subject="8bit", body=body,
                           extra_headers=b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8"
                                         b"\r\nContent-Transfer-Encoding: 8bit\r\n")
        self.deliver_one(msg, mail_options=["BODY=8BITMIME"])

    def test_smtputf8_envelope(self):
        s = self.smtp()
        s.ehlo("client.example.test")
        self.assertTrue(s.has_extn("smtputf8"), "EHLO does not offer SMTPUTF8")
        msg = make_message(subject="utf8", body="Grüße\r\n".encode("utf-8"))
        refused = s.sendmail("jösé@example.test", ["bjørn@example.test"], msg,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertEqual(refused, {})
        s.quit()
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "jösé@example.test", ["bjørn@example.test"])

    def test_empty_body_smtplib(self):
        # smtplib sends "\r\n.\r\n": one empty line
        s = self.smtp()
        self.assertEqual(s.sendmail("a@example.test", ["b@example.test"], b""), {})
        s.quit()
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, CRLF)

    def test_empty_body_raw(self):
        # DATA then the end at once: an empty message
        c = self.open_session(self.gate)
        self.send_message(c, "a@example.test", ["b@example.test"], b".\r\n")
        self.assertEqual(c.cmd("QUIT").code, 221)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, b"", "a@example.test", ["b@example.test"])

    def test_null_sender(self):
        s = self.smtp()
        msg = make_message(subject="bounce")
        self.assertEqual(s.sendmail("", ["b@example.test"], msg), {})
        s.quit()
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "", ["b@example.test"])

    def test_several_recipients(self):
        rc = ["b%d@example.test" % i for i in range(10)]
        self.deliver_one(make_message(subject="10 rcpts"), rcpts=rc)

    def test_30mb_body(self):
        rnd = random.Random(30)
        parts = []
        size = 0
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        block = bytes(rnd.choice(alphabet) for _ in range(1 << 16))
        i = 0
        while size < 30 * 1024 * 1024:
            n = rnd.randrange(0, 999)
            off = rnd.randrange(0, len(block) - 1000)
            line = block[off:off + n]
            if i % 97 == 0:
                line = b"." + line[:997]
            if i % 1013 == 0:
                line = b"."
            parts.append(line + CRLF)
            size += len(line) + 2
            i += 1
        body = b"".join(parts)
        msg = make_message(subject="30MB", body=body)
        m = self.deliver_one(msg)
        self.assertGreater(len(m["data"]), 30 * 1024 * 1024)

    def test_many_transactions_one_connection(self):
        s = self.smtp()
        sent = []
        for i in range(50):
            body = lines(b"message %d" % i, b"." * (i % 4), b"x" * (i * 13 % 998))
            msg = make_message(subject="n%d" % i, body=body)
            rcpt = "r%d@example.test" % i
            self.assertEqual(s.sendmail("s%d@example.test" % i, [rcpt], msg), {})
            sent.append((msg, "s%d@example.test" % i, rcpt))
        s.quit()
        stored = self.sink.assert_stored(self, 50)
        by_from = {m["mail_from"]: m for m in stored}
        self.assertEqual(len(by_from), 50)
        for msg, frm, rcpt in sent:
            self.assertIn(frm, by_from)
            self.assertDeliveredExact(by_from[frm], msg, frm, [rcpt])

    def test_rset(self):
        s = self.smtp()
        s.ehlo("client.example.test")
        self.assertEqual(s.mail("first@example.test")[0], 250)
        self.assertEqual(s.rcpt("first-rcpt@example.test")[0], 250)
        code, _ = s.rset()
        self.assertEqual(code, 250)
        # the transaction is gone: RCPT needs a MAIL again
        self.assertEqual(s.rcpt("x@example.test")[0], 503)
        msg = make_message(subject="after rset")
        self.assertEqual(s.sendmail("second@example.test", ["second-rcpt@example.test"], msg), {})
        # RSET between transactions, then another one
        self.assertEqual(s.rset()[0], 250)
        msg2 = make_message(subject="after second rset")
        self.assertEqual(s.sendmail("third@example.test", ["third-rcpt@example.test"], msg2), {})
        s.quit()
        stored = self.sink.assert_stored(self, 2)
        by_from = {m["mail_from"]: m for m in stored}
        self.assertNotIn("first@example.test", by_from)
        self.assertDeliveredExact(by_from["second@example.test"], msg, "second@example.test",
                                  ["second-rcpt@example.test"])
        self.assertDeliveredExact(by_from["third@example.test"], msg2, "third@example.test",
                                  ["third-rcpt@example.test"])

    def test_raw_body_split_in_small_writes(self):
        # the end of data split across writes: CR | LF . | CR LF
        c = self.open_session(self.gate)
        body = lines(b"split", b".dot", b"end")
        wire = dot_stuff(body)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        for i in range(0, len(wire)):
            c.send(wire[i:i + 1])
            if i % 5 == 0:
                time.sleep(0.005)
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 250, r)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, body)


class ToolDelivery(MxTestCase):
    """swaks and curl, as real-world clients."""

    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(self)

    def body_file(self, msg):
        path = os.path.join(self.tmpdir, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        return path

    def test_swaks(self):
        body = lines(b"swaks body", b".leading dot", b".", b"end")
        msg = make_message(subject="swaks", body=body)
        # swaks sends the file then CRLF.CRLF: give it the message without its last CRLF
        path = self.body_file(msg[:-2])
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.gate.port),
                            "--helo", "client.example.test",
                            "--from", "a@example.test", "--to", "b@example.test",
                            "--data", "@" + path, "--timeout", str(int(30 * SCALE))],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60 * SCALE)
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))
        self.assertIn(b"250", p.stdout)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "a@example.test", ["b@example.test"])

    def test_swaks_pipelining(self):
        msg = make_message(subject="swaks pipelining", body=lines(b"pipelined"))
        path = self.body_file(msg[:-2])
        p = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.gate.port),
                            "--helo", "client.example.test", "--pipeline",
                            "--from", "a@example.test", "--to", "b@example.test,c@example.test",
                            "--data", "@" + path, "--timeout", str(int(30 * SCALE))],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=60 * SCALE)
        self.assertEqual(p.returncode, 0, p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace"))
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "a@example.test", ["b@example.test", "c@example.test"])

    def test_curl_upload(self):
        body = lines(b"curl body", b".dot line", b".", b"x" * 998, b"end")
        msg = make_message(subject="curl", body=body)
        path = self.body_file(msg)
        p = subprocess.run(["curl", "-sS", "--max-time", str(int(60 * SCALE)),
                            "--url", "smtp://127.0.0.1:%d" % self.gate.port,
                            "--mail-from", "a@example.test", "--mail-rcpt", "b@example.test",
                            "--upload-file", path],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=90 * SCALE)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "a@example.test", ["b@example.test"])

    def test_curl_large_upload(self):
        rnd = random.Random(5)
        body = b"".join(bytes(rnd.choice(b"abcdefghij.") for _ in range(rnd.randrange(1, 300))) + CRLF
                        for _ in range(20000))
        msg = make_message(subject="curl large", body=body)
        path = self.body_file(msg)
        p = subprocess.run(["curl", "-sS", "--max-time", str(int(60 * SCALE)),
                            "--url", "smtp://127.0.0.1:%d" % self.gate.port,
                            "--mail-from", "a@example.test", "--mail-rcpt", "b@example.test",
                            "--upload-file", path],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=90 * SCALE)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg)
        self.assertEqual(sha256(strip_first_received(m["data"])[1]), sha256(msg))


class SmtplibDeliveryStreamed(SmtplibDelivery):
    """The same against a backend without CHUNKING: every message streams after its 354."""
    SINK_ARGS = ("--no-chunking",)


if __name__ == "__main__":
    unittest.main()
