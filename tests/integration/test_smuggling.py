"""
SMTP smuggling (SEC Consult, 2023): an end-of-data that some servers
accept and others do not, hiding a second message in the first. mxgate
must refuse every variant after the real end of data (5xx, 5.5.2 or
5.6.0), abort the backend transaction so nothing is stored, never deliver
the hidden message, and never let a bare CR, bare LF or NUL reach the
backend. Also the 1000-octet text line limit.
"""

import re
import time
import unittest

from harness import (CRLF, Closed, MxTestCase, bare_cr_lf_nul, dot_stuff, make_message,
                     start_gate_and_sink)

# The ambiguous ends of data. None of them holds a real CRLF.CRLF.
VARIANTS = [
    ("LF.LF", b"\n.\n"),
    ("LF.CRLF", b"\n.\r\n"),
    ("CRLF.LF", b"\r\n.\n"),
    ("CR.CR", b"\r.\r"),
    ("CRLF.CRCRLF", b"\r\n.\r\r\n"),
    ("CR.CRLF", b"\r.\r\n"),
    ("CRLF.CR", b"\r\n.\r"),
    ("LF.CR", b"\n.\r"),
    ("CR.LF", b"\r.\n"),
    ("CRLF-NUL.CRLF", b"\r\n\x00.\r\n"),
    ("CRLF.NUL-CRLF", b"\r\n.\x00\r\n"),
    ("NUL-LF.LF", b"\x00\n.\n"),
    ("CRLF.NUL-LF", b"\r\n.\x00\n"),
    ("LF-NUL.LF", b"\n\x00.\n"),
]

SMUGGLED = (b"MAIL FROM:<evil@x>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n"
            b"From: evil@x\r\nSubject: smuggled\r\n\r\nsmuggled")

ERR_RE = re.compile(rb"^5\.(5\.2|6\.0)\b")


class Smuggling(MxTestCase):
    SINK_ARGS = ()      # mxsink offers CHUNKING: small messages are held for BDAT

    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(self, sink_args=self.SINK_ARGS)

    def smuggle(self, variant):
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        payload = (b"From: a@example.test\r\nSubject: carrier\r\n\r\nhello" + variant + SMUGGLED +
                   b"\r\n.\r\n")
        c.send(payload)
        r = c.reply(timeout=20)
        self.assertTrue(500 <= r.code < 600, "end of data accepted: %r" % r)
        self.assertRegex(r.lines[0], ERR_RE)
        # No reply of a smuggled command follows: the next reply is NOOP's
        # (or the session was closed).
        try:
            c.send(b"NOOP\r\n")
            r2 = c.reply(timeout=10)
        except (Closed, ConnectionError):
            r2 = None  # the session was closed: acceptable
        if r2 is not None:
            self.assertIn(r2.code, (250, 421), "reply after the refused message: %r" % r2)
            if r2.code == 250:
                self.assertEqual(c.pending(0.3), b"", "extra replies after NOOP")
        self.sink.assert_stored(self, 0)
        return c

    def test_variants(self):
        for name, v in VARIANTS:
            with self.subTest(variant=name):
                self.sink.clear()
                self.smuggle(v)
        # a clean message still passes afterwards, and is the only one stored
        self.sink.clear()
        c = self.open_session(self.gate)
        msg = make_message(subject="clean")
        self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg))
        stored = self.sink.assert_stored(self, 1)
        self.assertDeliveredExact(stored[0], msg)
        for m in stored:
            self.assertEqual(bare_cr_lf_nul(m["data"]), -1, m["path"])
            self.assertNotIn(b"smuggled", m["data"])
            self.assertNotEqual(m["mail_from"], "evil@x")
        # mxsink counts what it saw on the wire, aborted transactions included
        totals = self.sink.stop_and_totals()
        for k in ("bare_lf", "bare_cr", "nul", "long_lines"):
            if k in totals:
                self.assertEqual(totals[k], 0, "%s reached the sink: %r" % (k, totals))

    def test_variant_then_clean_message_same_session(self):
        c = self.smuggle(b"\n.\n")
        if c.closed:
            self.skipTest("mxgate closes the session after a smuggling attempt")
        msg = make_message(subject="after")
        self.assertEqual(c.cmd("RSET").code, 250)
        self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg))
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg)

    def test_bare_lf_in_body(self):
        for name, body in [("bare LF", b"line one\nline two\r\n"),
                           ("bare CR", b"line one\rline two\r\n"),
                           ("NUL", b"line one\x00two\r\n"),
                           ("LF at end", b"last line\n"),
                           ("CR before CRLF", b"x\r\r\n")]:
            with self.subTest(case=name):
                self.sink.clear()
                c = self.open_session(self.gate)
                wire = b"Subject: bad\r\n\r\n" + body + b".\r\n"
                if not body.endswith(CRLF):
                    wire = b"Subject: bad\r\n\r\n" + body + b"\r\n.\r\n"
                r = self.send_message(c, "a@example.test", ["b@example.test"], wire, expect_final=None)
                self.assertTrue(500 <= r.code < 600, r)
                self.assertRegex(r.lines[0], ERR_RE)
                self.sink.assert_stored(self, 0)
        totals = self.sink.stop_and_totals()
        for k in ("bare_lf", "bare_cr", "nul"):
            if k in totals:
                self.assertEqual(totals[k], 0, "%s reached the sink: %r" % (k, totals))

    def test_split_variant_across_writes(self):
        # the ambiguous end spread over several writes
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        for part in (b"Subject: x\r\n\r\nhello\r", b"\n", b".", b"\n", SMUGGLED, b"\r\n", b".", b"\r\n"):
            c.send(part)
            time.sleep(0.05)
        r = c.reply(timeout=20)
        self.assertTrue(500 <= r.code < 600, r)
        self.sink.assert_stored(self, 0)

    def test_refused_data_then_session_goes_on(self):
        """MAIL, a refused RCPT and DATA pipelined: DATA gets 503, and the session goes on."""
        c = self.open_session(self.gate)
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<x@not-relayed.test>\r\nDATA\r\n")
        self.assertEqual([c.reply(timeout=20).code for _ in range(3)], [250, 554, 503])
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def test_message_pipelined_before_354_is_data(self):
        """DATA accepted: bytes sent before the 354 are the message, as a lenient server takes them."""
        c = self.open_session(self.gate)
        msg = make_message(subject="eager")
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n" +
               dot_stuff(msg) + b"NOOP\r\n")
        self.assertEqual([c.reply(timeout=20).code for _ in range(5)], [250, 250, 354, 250, 250])
        self.sink.assert_stored(self, 1)


class LineLength(MxTestCase):
    SINK_ARGS = ()

    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(self, sink_args=self.SINK_ARGS)

    def test_1000_octets_accepted(self):
        c = self.open_session(self.gate)
        line = b"a" * 998
        msg = make_message(body=line + CRLF + b"." + line[:997] + CRLF + b"end\r\n")
        self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg))
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg)

    def test_1001_octets_refused(self):
        c = self.open_session(self.gate)
        msg = make_message(body=b"a" * 999 + CRLF + b"end\r\n")
        r = self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg), expect_final=None)
        self.assertTrue(500 <= r.code < 600, r)
        self.sink.assert_stored(self, 0)
        # the session goes on
        c.send(b"RSET\r\n")
        try:
            r = c.reply()
        except (Closed, ConnectionError):
            r = None
        if r is not None:
            self.assertIn(r.code, (250, 421), r)

    def test_very_long_line_refused(self):
        c = self.open_session(self.gate)
        msg = make_message(body=b"b" * 200000 + CRLF)
        r = self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg), expect_final=None)
        self.assertTrue(500 <= r.code < 600, r)
        self.sink.assert_stored(self, 0)
        # no line split in two reached the sink either
        totals = self.sink.stop_and_totals()
        if "long_lines" in totals:
            self.assertEqual(totals["long_lines"], 0, totals)

    def test_long_header_line_refused(self):
        c = self.open_session(self.gate)
        msg = b"Subject: " + b"s" * 1200 + b"\r\n\r\nbody\r\n"
        r = self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg), expect_final=None)
        self.assertTrue(500 <= r.code < 600, r)
        self.sink.assert_stored(self, 0)


class SmugglingStreamed(Smuggling):
    """The same against a backend without CHUNKING: every message streams after its 354."""
    SINK_ARGS = ("--no-chunking",)


class LineLengthStreamed(LineLength):
    """The same against a backend without CHUNKING: every message streams after its 354."""
    SINK_ARGS = ("--no-chunking",)


if __name__ == "__main__":
    unittest.main()
