"""
[access] lists: deny (554 5.7.1 greeting, then 503 5.5.1 to everything
but QUIT, which gets 221; nothing reaches a backend) and allow (trusted
networks skip the limits), for IPv4 (clients bound to 127.0.0.x) and IPv6
(::1), matched in memory: a denied or allowed client needs no store, so
a Redis that is down changes nothing for them.
"""

import socket
import time
import unittest

from harness import (enhanced, Closed, MxTestCase, SCALE, align_window, dot_stuff, free_port, gate_config,
                     make_message, redis_section, smtp_from, start_mxgate, start_mxsink, start_redis)



class Access(MxTestCase):
    def setUp(self):
        super().setUp()
        self.sink = start_mxsink(self)

    def gate(self, access, limits=None, redis=None, ipv6=False, name="mxgate"):
        port = free_port()
        cfg = gate_config(port, [self.sink], server={"max_errors": 50})
        if ipv6:
            self.port6 = free_port(socket.AF_INET6)
            cfg["listener in"]["listen"] = "127.0.0.1:%d, [::1]:%d" % (port, self.port6)
        if redis is not None:
            cfg["redis"] = redis
        if limits is not None:
            cfg["limits"] = limits
        cfg["access"] = access
        gate = start_mxgate(self, cfg, name=name)
        if limits:
            # every rate here is per minute: keep a burst inside one fixed window
            align_window(60, redis=redis is not None)
        return gate

    def greet(self, port, source):
        c = smtp_from(self, port, source)
        try:
            return c.reply(timeout=10), c
        except Closed as e:
            self.fail("connection from %s closed without a greeting: %s" % (source, e))

    def assertDeniedSession(self, port, source):
        """554 5.7.1 greeting; 503 5.5.1 to every command but QUIT; 221 to QUIT."""
        g, c = self.greet(port, source)
        self.assertEqual(g.code, 554, "greeting for denied %s: %r" % (source, g.raw))
        self.assertEqual(enhanced(g), "5.7.1", g)
        for cmd in ("EHLO client.example.test", "HELO client.example.test", "MAIL FROM:<a@example.test>",
                    "RCPT TO:<b@example.test>", "DATA", "RSET", "NOOP", "VRFY b", "STARTTLS",
                    "AUTH PLAIN AGFhAGI=", "Subject: not a command"):
            r = c.cmd(cmd)
            self.assertEqual(r.code, 503, "%r from denied %s: %r" % (cmd, source, r.raw))
            self.assertEqual(enhanced(r), "5.5.1", "%r: %r" % (cmd, r.raw))
        # pipelined: a whole transaction in one write, still nothing but 503
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        for r in c.replies(3):
            self.assertEqual(r.code, 503, r)
        r = c.cmd("QUIT")
        self.assertEqual(r.code, 221, r)
        self.assertTrue(c.expect_closed(5), "denied session left open after QUIT")

    def assertGreeted(self, port, source):
        g, c = self.greet(port, source)
        self.assertEqual(g.code, 220, "greeting for %s: %r" % (source, g.raw))
        return c

    def deliver(self, c, subject):
        self.assertEqual(c.cmd("EHLO client.example.test").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message(subject=subject)))
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 250, r)

    def test_deny_ipv4(self):
        gate = self.gate({"deny": "127.0.0.2/32"})
        self.assertDeniedSession(gate.port, "127.0.0.2")
        self.assertIn(b"denied", gate.log())
        # others are not affected
        c = self.assertGreeted(gate.port, "127.0.0.3")
        self.deliver(c, "from 127.0.0.3")
        self.sink.assert_stored(self, 1)
        totals = self.sink.stop_and_totals()
        self.assertEqual(totals.get("messages"), 1, totals)

    def test_deny_nothing_reaches_backend(self):
        gate = self.gate({"deny": "127.0.0.2/32"})
        for _ in range(3):
            self.assertDeniedSession(gate.port, "127.0.0.2")
        self.sink.assert_stored(self, 0)
        totals = self.sink.stop_and_totals()
        self.assertEqual(totals.get("messages", 0), 0, totals)
        self.assertEqual(totals.get("recipients", 0), 0, totals)

    def test_deny_cidr_range(self):
        gate = self.gate({"deny": "127.0.0.0/30, 192.0.2.0/24"})
        for src in ("127.0.0.2", "127.0.0.3"):
            self.assertDeniedSession(gate.port, src)
        for src in ("127.0.0.4", "127.0.0.5", "127.0.1.2"):
            c = self.assertGreeted(gate.port, src)
            c.cmd("QUIT")

    def test_deny_ipv6(self):
        gate = self.gate({"deny": "::1/128"}, ipv6=True)
        self.assertDeniedSession(self.port6, "::1")
        c = self.assertGreeted(gate.port, "127.0.0.1")
        self.deliver(c, "IPv4 next to a denied ::1")
        self.sink.assert_stored(self, 1)

    def test_ipv4_deny_does_not_match_ipv6(self):
        gate = self.gate({"deny": "0.0.0.0/0"}, ipv6=True)
        c = self.assertGreeted(self.port6, "::1")
        self.deliver(c, "over ::1, IPv4 all denied")
        self.assertDeniedSession(gate.port, "127.0.0.2")
        self.sink.assert_stored(self, 1)

    def test_allow_skips_limits(self):
        gate = self.gate({"allow": "127.0.0.2/32"},
                         limits={"connection_rate": "1/1m", "concurrency": 1, "message_rate": "1/1m",
                                 "recipient_rate": "1/1m"})
        # trusted: more than every limit
        sessions = [self.assertGreeted(gate.port, "127.0.0.2") for _ in range(4)]
        for i, c in enumerate(sessions):
            self.assertEqual(c.cmd("EHLO client.example.test").code, 250)
            for j in range(2):
                self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250, (i, j))
                for k in range(3):
                    r = c.cmd("RCPT TO:<r%d@example.test>" % k)
                    self.assertEqual(r.code, 250, r)
                self.assertEqual(c.cmd("DATA").code, 354)
                c.send(dot_stuff(make_message(subject="trusted %d %d" % (i, j))))
                self.assertEqual(c.reply(timeout=30).code, 250)
        self.sink.assert_stored(self, 8)
        # not trusted: limited
        c = self.assertGreeted(gate.port, "127.0.0.3")
        g, d = self.greet(gate.port, "127.0.0.3")
        self.assertEqual(g.code, 421, g)
        self.assertEqual(enhanced(g), "4.7.0", g)
        self.assertEqual(c.cmd("EHLO x.example.test").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        r = c.cmd("RCPT TO:<c@example.test>")
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.7.1", r)

    def test_allow_ipv6(self):
        gate = self.gate({"allow": "::1/128"}, limits={"connection_rate": "1/1m"}, ipv6=True)
        for i in range(5):
            c = self.assertGreeted(self.port6, "::1")
            c.cmd("QUIT")
        c = self.assertGreeted(gate.port, "127.0.0.2")
        g, d = self.greet(gate.port, "127.0.0.2")
        self.assertEqual(g.code, 421, g)

    def test_access_without_store_round_trip(self):
        """Redis down, on_failure = tempfail: deny still 554, allow still 220, others 421."""
        redis = start_redis(self)
        gate = self.gate({"allow": "127.0.0.2/32", "deny": "127.0.0.3/32"},
                         limits={"connection_rate": "100/1m", "message_rate": "100/1m"},
                         redis=redis_section(redis, on_failure="tempfail", timeout="200ms"))
        redis.stop()
        t0 = time.monotonic()
        self.assertDeniedSession(gate.port, "127.0.0.3")
        c = self.assertGreeted(gate.port, "127.0.0.2")
        self.deliver(c, "trusted while Redis is down")
        self.assertLess(time.monotonic() - t0, 3 * SCALE)
        g, d = self.greet(gate.port, "127.0.0.4")
        self.assertEqual(g.code, 421, "an untrusted client needs the store: %r" % g.raw)
        self.sink.assert_stored(self, 1)


if __name__ == "__main__":
    unittest.main()
