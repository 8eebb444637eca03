"""
The client-facing ESMTP dialog: greeting, EHLO keywords, the simple
verbs, line limits, sequence errors, SIZE, recipient limits,
relay_domains, max_errors, PIPELINING order, timeouts. Byte-exact
conversations through RawSMTP.
"""

import re
import time
import unittest

from harness import (enhanced, CRLF, HOSTNAME, MxTestCase, bare_cr_lf_nul, dot_stuff, make_message,
                     start_gate_and_sink)



class Dialog(MxTestCase):
    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(
            self, server={"max_message_size": "1M", "max_recipients": 3, "max_errors": 5})

    def test_greeting(self):
        c = self.gate.client()
        g = c.greeting()
        self.assertEqual(g.code, 220)
        self.assertEqual(len(g.lines), 1, g)
        self.assertTrue(g.raw.startswith(("220 %s ESMTP mxgate" % HOSTNAME).encode()), g)
        self.assertTrue(g.raw.endswith(CRLF), g)

    def test_ehlo_keywords(self):
        c = self.open_session(self.gate, ehlo=False)
        r = c.ehlo("client.example.test")
        self.assertEqual(r.code, 250, r)
        self.assertTrue(r.lines[0].startswith(HOSTNAME.encode()), r)
        kw = {l.split(b" ")[0].upper(): l for l in r.lines[1:]}
        for k in (b"PIPELINING", b"SIZE", b"8BITMIME", b"SMTPUTF8", b"ENHANCEDSTATUSCODES"):
            self.assertIn(k, kw, "EHLO lacks %s: %r" % (k, r.raw))
        self.assertEqual(kw[b"SIZE"], b"SIZE 1048576", r)
        # a second EHLO is allowed and answers the same
        r2 = c.ehlo("again.example.test")
        self.assertEqual(r2.code, 250, r2)

    def test_helo(self):
        c = self.open_session(self.gate, ehlo=False)
        r = c.cmd("HELO client.example.test")
        self.assertEqual(r.code, 250, r)
        self.assertEqual(len(r.lines), 1, r)

    def test_simple_verbs(self):
        c = self.open_session(self.gate)
        r = c.cmd("NOOP")
        self.assertEqual(r.code, 250, r)
        self.assertEqual(c.cmd("VRFY postmaster").code, 252)
        self.assertEqual(c.cmd("HELP").code, 214)
        r = c.cmd("XYZZY frob")
        self.assertIn(r.code, (500, 502), r)
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("noop").code, 250, "verbs are case-insensitive")
        r = c.cmd("QUIT")
        self.assertEqual(r.code, 221, r)
        self.assertTrue(c.expect_closed(), "no close after QUIT")

    def test_command_line_limit(self):
        c = self.open_session(self.gate)
        # exactly 512 octets with CRLF: accepted
        line = b"NOOP " + b"x" * (512 - 2 - 5)
        self.assertEqual(len(line) + 2, 512)
        r = c.cmd(line)
        self.assertEqual(r.code, 250, r)
        # 513: refused, and the session goes on
        line = b"NOOP " + b"x" * (513 - 2 - 5)
        r = c.cmd(line)
        self.assertEqual(r.code, 500, r)
        self.assertEqual(enhanced(r), "5.5.2", r)
        self.assertEqual(c.cmd("NOOP").code, 250)
        # much longer, with the rest of the line arriving later: one reply
        c.send(b"MAIL FROM:<" + b"a" * 3000)
        time.sleep(0.1)
        c.send(b"b" * 5000 + b"@example.test>\r\nNOOP\r\n")
        r = c.reply()
        self.assertEqual(r.code, 500, r)
        self.assertEqual(enhanced(r), "5.5.2", r)
        r = c.reply()
        self.assertEqual(r.code, 250, "the long line got more than one reply, or NOOP none: %r" % r)
        # no transaction was started by the long MAIL line
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 503)

    def test_nul_in_command(self):
        c = self.open_session(self.gate)
        r = c.cmd(b"NO\x00OP")
        self.assertEqual(r.code, 500, r)
        self.assertEqual(enhanced(r), "5.5.2", r)
        r = c.cmd(b"MAIL FROM:<a\x00b@example.test>")
        self.assertEqual(r.code, 500, r)
        self.assertEqual(enhanced(r), "5.5.2", r)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        r = c.cmd(b"RCPT TO:<b@example.test>\x00")
        self.assertEqual(r.code, 500, r)
        self.assertEqual(enhanced(r), "5.5.2", r)
        self.assertEqual(c.cmd("NOOP").code, 250)

    def test_bad_sequence(self):
        c = self.open_session(self.gate)
        for cmd in ("RCPT TO:<b@example.test>", "DATA"):
            r = c.cmd(cmd)
            self.assertEqual(r.code, 503, (cmd, r))
            self.assertEqual(enhanced(r), "5.5.1", (cmd, r))
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        r = c.cmd("DATA")
        self.assertEqual(r.code, 503, r)
        self.assertEqual(enhanced(r), "5.5.1", r)
        r = c.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 503, "nested MAIL: %r" % r)
        self.assertEqual(enhanced(r), "5.5.1", r)
        # the transaction still works
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message()))
        self.assertEqual(c.reply().code, 250)
        self.sink.assert_stored(self, 1)

    def test_size_declared(self):
        c = self.open_session(self.gate)
        r = c.cmd("MAIL FROM:<a@example.test> SIZE=%d" % (1048576 + 1))
        self.assertEqual(r.code, 552, r)
        self.assertEqual(enhanced(r), "5.3.4", r)
        r = c.cmd("MAIL FROM:<a@example.test> SIZE=99999999999999999999")
        self.assertEqual(r.code, 552, r)
        r = c.cmd("MAIL FROM:<a@example.test> SIZE=1000")
        self.assertEqual(r.code, 250, r)

    def test_size_actual(self):
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        body = (b"y" * 998 + CRLF) * 1200  # 1.2 MB > 1M
        c.send(dot_stuff(make_message(body=body)))
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 552, r)
        self.assertEqual(enhanced(r), "5.3.4", r)
        self.sink.assert_stored(self, 0)
        # the session goes on and a message under the limit passes
        self.assertEqual(c.cmd("RSET").code, 250)
        msg = make_message(body=(b"z" * 998 + CRLF) * 900)
        self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg))
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg)

    def test_too_many_recipients(self):
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        for i in range(3):
            self.assertEqual(c.cmd("RCPT TO:<r%d@example.test>" % i).code, 250)
        r = c.cmd("RCPT TO:<r3@example.test>")
        self.assertEqual(r.code, 452, r)
        self.assertEqual(enhanced(r), "4.5.3", r)
        self.assertEqual(c.cmd("DATA").code, 354)
        msg = make_message()
        c.send(dot_stuff(msg))
        self.assertEqual(c.reply().code, 250)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "a@example.test",
                                  ["r0@example.test", "r1@example.test", "r2@example.test"])

    def test_relay_domains(self):
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@elsewhere.test>").code, 250)
        r = c.cmd("RCPT TO:<x@other.test>")
        self.assertIn(r.code, (554, 550), r)
        self.assertEqual(enhanced(r), "5.7.1", r)
        r = c.cmd("RCPT TO:<x@sub.example.test.other.test>")
        self.assertIn(r.code, (554, 550), r)
        r = c.cmd("RCPT TO:<x@EXAMPLE.Test>")
        self.assertEqual(r.code, 250, "domains compare case-insensitively: %r" % r)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message()))
        self.assertEqual(c.reply().code, 250)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertEqual([x.lower() for x in m["rcpts"]], ["x@example.test"])

    def test_max_errors(self):
        c = self.open_session(self.gate)
        got = []
        closed_at = None
        for i in range(8):
            try:
                r = c.cmd("BOGUS%d" % i)
            except Exception:
                closed_at = i
                break
            got.append(r.code)
            if r.code == 421:
                break
        self.assertIn(421, got, "no 421 after %d errors with max_errors = 5: %r" % (len(got), got))
        n_before = got.index(421)
        self.assertIn(n_before, (4, 5), "421 after %d errors with max_errors = 5: %r" % (n_before, got))
        self.assertTrue(all(500 <= x < 600 for x in got[:n_before]), got)
        self.assertIsNone(closed_at)
        self.assertTrue(c.expect_closed(), "connection not closed after 421")

    def test_junk_commands(self):
        """max_junk_commands = 4, max_errors = 2: past 4 NOOP/VRFY/RSET/HELP without an accepted
        message, each is still answered but also counts as an error; an accepted message resets the
        count; the third error past the limit gets 421 and the session closes."""
        gate, sink = start_gate_and_sink(self, server={"max_junk_commands": 4, "max_errors": 2})
        c = self.open_session(gate)
        for cmd, code in (("NOOP", 250), ("RSET", 250), ("VRFY x", 252), ("HELP", 214)):
            self.assertEqual(c.cmd(cmd).code, code)
        self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(make_message(subject="j")))
        # the count starts again: four more are free, the next two are errors, the third ends it
        got = [c.cmd("NOOP").code for _ in range(6)]
        self.assertEqual(got, [250] * 6)
        r = c.cmd("NOOP")
        self.assertEqual(r.code, 421, r)
        self.assertEqual(enhanced(r), "4.7.0", r)
        self.assertTrue(c.expect_closed(), "connection not closed after 421")
        # a session that sends mail between them is never cut off
        c = self.open_session(gate)
        for i in range(4):
            for _ in range(4):
                self.assertEqual(c.cmd("RSET").code, 250)
            self.send_message(c, "a@example.test", ["b@example.test"],
                              dot_stuff(make_message(subject="k%d" % i)))
        self.assertEqual(c.cmd("QUIT").code, 221)

    def test_pipelined_group(self):
        c = self.open_session(self.gate)
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
               b"RCPT TO:<c@example.test>\r\nDATA\r\n")
        rs = c.replies(4)
        self.assertEqual([r.code for r in rs], [250, 250, 250, 354], rs)
        msg1 = make_message(subject="first")
        msg2 = make_message(subject="second")
        # end of data, and the next transaction, in one write
        c.send(dot_stuff(msg1) + b"MAIL FROM:<d@example.test>\r\nRCPT TO:<e@example.test>\r\n"
               b"RCPT TO:<x@not-relayed.test>\r\nRCPT TO:<f@example.test>\r\nDATA\r\n")
        rs = c.replies(6)  # end of data, MAIL, RCPT, RCPT (refused), RCPT, DATA
        self.assertEqual([r.code for r in rs[:3]], [250, 250, 250], rs)
        self.assertIn(rs[3].code, (550, 554), rs)
        self.assertEqual([r.code for r in rs[4:]], [250, 354], rs)
        c.send(dot_stuff(msg2) + b"RSET\r\nNOOP\r\nQUIT\r\n")
        rs = c.replies(4)
        self.assertEqual([r.code for r in rs], [250, 250, 250, 221], rs)
        self.assertTrue(c.expect_closed())
        stored = self.sink.assert_stored(self, 2)
        by_from = {m["mail_from"]: m for m in stored}
        self.assertDeliveredExact(by_from["a@example.test"], msg1, "a@example.test",
                                  ["b@example.test", "c@example.test"])
        self.assertDeliveredExact(by_from["d@example.test"], msg2, "d@example.test",
                                  ["e@example.test", "f@example.test"])

    def test_pipelined_errors_in_order(self):
        c = self.open_session(self.gate)
        c.send(b"RCPT TO:<b@example.test>\r\nMAIL FROM:<a@example.test>\r\nDATA\r\n"
               b"RCPT TO:<b@example.test>\r\nXYZZY\r\nNOOP\r\nRSET\r\n")
        rs = c.replies(7)
        codes = [r.code for r in rs]
        self.assertEqual(codes[:4], [503, 250, 503, 250], rs)
        self.assertIn(codes[4], (500, 502), rs)
        self.assertEqual(codes[5:], [250, 250], rs)
        self.assertEqual(c.pending(0.3), b"", "extra replies")

    def test_many_commands_pipelined(self):
        c = self.open_session(self.gate)
        c.send(b"NOOP\r\n" * 200)
        rs = c.replies(200, timeout=20)
        self.assertTrue(all(r.code == 250 for r in rs))
        self.assertEqual(c.pending(0.3), b"")

    def test_quit_pipelined_after_data(self):
        c = self.open_session(self.gate)
        msg = make_message()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.replies(3)], [250, 250, 354])
        c.send(dot_stuff(msg) + b"QUIT\r\n")
        self.assertEqual([r.code for r in c.replies(2)], [250, 221])
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg)
        self.assertEqual(bare_cr_lf_nul(m["data"]), -1)


class Timeouts(MxTestCase):
    SINK_ARGS = ()      # mxsink offers CHUNKING: the stalled message is held

    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(
            self, server={"timeout_command": "1s", "timeout_data": "1s"}, sink_args=self.SINK_ARGS)

    def test_command_timeout(self):
        c = self.open_session(self.gate)
        t0 = time.monotonic()
        r = c.reply(timeout=10)
        self.assertEqual(r.code, 421, r)
        self.assertTrue(c.expect_closed(5), "not closed after the 421")
        self.assertLess(time.monotonic() - t0, 8)

    def test_command_timeout_is_per_command(self):
        c = self.open_session(self.gate)
        # activity keeps the session alive beyond one timeout
        for _ in range(4):
            time.sleep(0.5)
            self.assertEqual(c.cmd("NOOP").code, 250)

    def test_data_timeout(self):
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: stalled\r\n\r\npart of a body")
        r = c.reply(timeout=10)
        self.assertEqual(r.code, 421, r)
        self.assertTrue(c.expect_closed(5))
        self.sink.assert_stored(self, 0, settle=1.0)


class DataTimeoutStreamed(Timeouts):
    """The data timeout against a backend without CHUNKING: the stalled message was streaming."""
    SINK_ARGS = ("--no-chunking",)
    test_command_timeout = test_command_timeout_is_per_command = None


if __name__ == "__main__":
    unittest.main()
