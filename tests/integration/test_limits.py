"""
Per-client limits ([limits]) with the embedded store (no [redis]) and with
a real redis-server of the test's own: connection_rate and concurrency at
connect (421 4.7.0 and close), message_rate at MAIL and recipient_rate at
RCPT (451 4.7.1); exactly N admitted, then refused, then admitted again
after the window; bursts from parallel clients over several workers;
IPv6 clients over ::1. MAIL pays for the first recipient in advance:
recipient_rate stays exact with one and with several recipients per
message, and a transaction abandoned after MAIL keeps its prepaid
recipient charged (conservative by one). MAIL's check runs alongside the
backend's MAIL: a MAIL refused by the limit leaves no transaction at the
backend (RSET when the backend had already accepted it, nothing at all
when the refusal came first), and the session goes on. With Redis: two mxgate instances share one limit,
a killed mxgate's concurrency leases expire, Redis stopped or frozen mid
run honours on_failure both ways and Redis restarted is used again
without restarting mxgate, AUTH and unix sockets, and every key mxgate
writes has a TTL.

The probe that start_mxgate uses to see the port open connects from
127.0.0.1, so the limited clients here connect from 127.0.0.2 and up.

Cost: LimitsRedisShared.test_killed_instance_leases_expire_live_ones_refreshed waits for the
lease TTL (60 s in proxy/policy.c); everything else is a few seconds each.
"""

import re
import signal
import socket
import threading
import time
import unittest

from harness import (enhanced, Closed, MxTestCase, SCALE, align_window, dot_stuff, free_port, gate_config,
                     make_message, redis_section, smtp_from, start_mxgate, start_mxsink,
                     start_redis, strip_first_received, ThreadedBackend)

A = "127.0.0.2"   # the limited client
B = "127.0.0.3"   # another client, counted apart
LEASE_TTL_S = 60  # proxy/policy.c LEASE_TTL_MS



class RecordingBackend(ThreadedBackend):
    """
    A minimal SMTP backend on 127.0.0.1 that records every command line per
    connection (self.conns: list of lists of upper-case verbs) and answers
    MAIL after mail_delay seconds. Stopped by the test's cleanup.
    """

    def __init__(self, test, mail_delay=0.0):
        self.mail_delay = mail_delay
        self.conns = []
        self.messages = 0
        super().__init__(test)

    def accepted(self, sock):
        verbs = []
        self.conns.append(verbs)
        return (verbs,)

    def serve(self, s, verbs):
        s.settimeout(0.2)
        buf = b""
        in_data = False
        try:
            s.sendall(b"220 recording.backend ESMTP\r\n")
            while not self.stop.is_set():
                if in_data:
                    end = buf.find(b"\r\n.\r\n")
                    if end >= 0:
                        buf = buf[end + 5:]
                        in_data = False
                        with self.lock:
                            self.messages += 1
                            verbs.append(".")
                        s.sendall(b"250 2.0.0 queued as REC%d\r\n" % self.messages)
                        continue
                elif b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    verb = line.strip().split(b" ")[0].upper().decode("ascii", "replace")
                    with self.lock:
                        verbs.append(verb)
                    if verb == "EHLO":
                        s.sendall(b"250-recording.backend\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    elif verb == "MAIL":
                        if self.mail_delay:
                            time.sleep(self.mail_delay)
                        s.sendall(b"250 2.1.0 ok\r\n")
                    elif verb == "DATA":
                        in_data = True
                        s.sendall(b"354 go ahead\r\n")
                    elif verb == "QUIT":
                        s.sendall(b"221 2.0.0 bye\r\n")
                        return
                    else:  # RCPT RSET NOOP
                        s.sendall(b"250 2.0.0 ok\r\n")
                    continue
                chunk = self.recv(s)
                if chunk is None:
                    continue
                if not chunk:
                    return
                buf += chunk
        except OSError:
            return

    def transactions(self):
        """Each connection's MAIL transactions, as the verbs from a MAIL to its end."""
        out = []
        with self.lock:
            for verbs in self.conns:
                cur = None
                for v in verbs:
                    if v == "MAIL":
                        if cur is not None:
                            out.append(cur)
                        cur = [v]
                    elif cur is not None:
                        cur.append(v)
                        if v in (".", "RSET", "QUIT"):
                            out.append(cur)
                            cur = None
                if cur is not None:
                    out.append(cur)
        return out


class LimitsMixin:
    """Builds a sink and an mxgate with [limits] (and [redis] when self.use_redis)."""

    use_redis = False

    def setUp(self):
        super().setUp()
        self.sink = start_mxsink(self)
        self.redis = start_redis(self) if self.use_redis else None

    def gate(self, limits, workers=1, extra=None, ipv6=False, name="mxgate", backend=None):
        port = free_port()
        cfg = gate_config(port, [backend or self.sink], workers=workers)
        if ipv6:
            self.port6 = free_port(socket.AF_INET6)
            cfg["listener in"]["listen"] = "127.0.0.1:%d, [::1]:%d" % (port, self.port6)
        if self.redis is not None:
            cfg["redis"] = redis_section(self.redis)
        cfg["limits"] = dict(limits)
        for k, v in (extra or {}).items():
            cfg[k] = v
        return start_mxgate(self, cfg, name=name)

    def align(self, window_s):
        align_window(window_s, redis=self.redis is not None)

    def next_window(self, window_s):
        """Waits for the start of the next window (align() may stay in the current one)."""
        clock = time.time if self.redis is not None else time.monotonic
        time.sleep(window_s - clock() % window_s + 0.02)
        self.align(window_s)

    # -- one attempt each

    def connect(self, gate, source=A, port=None, host=None):
        """Connects from source and reads the greeting: (reply, client)."""
        c = smtp_from(self, port or gate.port, source, host=host)
        try:
            r = c.reply(timeout=10)
        except Closed as e:
            self.fail("connection from %s closed without a greeting: %s" % (source, e))
        return r, c

    def assertAdmitted(self, r, what=""):
        self.assertEqual(r.code, 220, "%s: expected the 220 greeting, got %r" % (what, r.raw))

    def assertRefusedAtConnect(self, r, c, what=""):
        self.assertEqual(r.code, 421, "%s: expected 421 4.7.0, got %r" % (what, r.raw))
        self.assertEqual(enhanced(r), "4.7.0", "%s: %r" % (what, r.raw))
        self.assertTrue(c.expect_closed(5), "%s: connection left open after %r" % (what, r.raw))

    def session(self, gate, source=A, port=None, host=None):
        r, c = self.connect(gate, source, port, host)
        self.assertAdmitted(r, "session from %s" % source)
        e = c.ehlo()
        self.assertEqual(e.code, 250, e)
        return c

    def quit(self, c):
        r = c.cmd("QUIT")
        self.assertEqual(r.code, 221, r)
        self.assertTrue(c.expect_closed(5))
        c.close()

    def message(self, c, frm="a@example.test", rcpts=("b@example.test",), subject="limits"):
        msg = make_message(subject=subject)
        r = c.cmd("MAIL FROM:<%s>" % frm)
        if r.code != 250:
            return r
        for rc in rcpts:
            rr = c.cmd("RCPT TO:<%s>" % rc)
            self.assertEqual(rr.code, 250, rr)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(msg))
        return c.reply(timeout=30)

    def wait_admitted(self, gate, source, timeout, interval=0.25):
        """Connects every interval until greeted with 220; returns the seconds it took."""
        t0 = time.monotonic()
        deadline = t0 + timeout * SCALE
        last = None
        while time.monotonic() < deadline:
            r, c = self.connect(gate, source)
            last = r
            if r.code == 220:
                self.quit(c)
                return time.monotonic() - t0
            self.assertRefusedAtConnect(r, c, "while waiting for the window to pass")
            c.close()
            time.sleep(interval)
        self.fail("%s still refused %.1fs later: %r" % (source, timeout * SCALE, last.raw if last else None))


class LimitsCases(LimitsMixin):
    """The same limit tests, run once per store."""

    def test_connection_rate_exact_then_window(self):
        gate = self.gate({"connection_rate": "3/2s"})
        self.align(2)
        for i in range(3):
            r, c = self.connect(gate)
            self.assertAdmitted(r, "connection %d of 3" % (i + 1))
            self.quit(c)
        r, c = self.connect(gate)
        self.assertRefusedAtConnect(r, c, "connection 4 of a 3/2s rate")
        self.assertIn(A.encode(), r.raw, "the 421 should name the client")
        # another client is counted apart
        r, c = self.connect(gate, B)
        self.assertAdmitted(r, "a different client")
        self.quit(c)
        # after the window: admitted again
        self.wait_admitted(gate, A, timeout=2 + 3)
        self.assertIn(b"refused", gate.log())

    def test_connection_rate_burst_over_workers(self):
        """30 parallel connections against 10/1m over 4 workers: exactly 10 greeted with 220."""
        gate = self.gate({"connection_rate": "10/1m"}, workers=4)
        self.align(60)
        results = []
        lock = threading.Lock()
        start = threading.Event()

        def one():
            start.wait(10)
            try:
                c = smtp_from(self, gate.port, A)
                r = c.reply(timeout=15)
                code = r.code
                if code == 220:
                    c.send(b"QUIT\r\n")
            except (Closed, OSError) as e:
                code = repr(e)
            with lock:
                results.append(code)

        threads = [threading.Thread(target=one, daemon=True) for _ in range(30)]
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join(30 * SCALE)
        self.assertEqual(len(results), 30, "clients did not finish: %r" % results)
        self.assertEqual(results.count(220), 10, "greetings: %r" % sorted(map(str, results)))
        self.assertEqual(results.count(421), 20, "greetings: %r" % sorted(map(str, results)))

    def test_concurrency_exact_and_release(self):
        gate = self.gate({"concurrency": 2})
        s1 = self.session(gate)
        s2 = self.session(gate)
        r, c = self.connect(gate)
        self.assertRefusedAtConnect(r, c, "third session with concurrency = 2")
        self.assertIn(A.encode(), r.raw)
        # another client is counted apart
        other = self.session(gate, B)
        # the open sessions still work
        self.assertEqual(s1.cmd("NOOP").code, 250)
        self.assertEqual(s2.cmd("NOOP").code, 250)
        # a normal close frees its slot at once
        self.quit(s1)
        r, c = self.connect(gate)
        self.assertAdmitted(r, "right after one of the two sessions ended with QUIT")
        # and a client that just disconnects frees it too
        r2, c2 = self.connect(gate)
        self.assertRefusedAtConnect(r2, c2, "third session again")
        c.close()
        time.sleep(0.2 * SCALE)
        r3, c3 = self.connect(gate)
        self.assertAdmitted(r3, "after a session was closed by the client without QUIT")
        self.quit(c3)
        self.quit(s2)
        self.quit(other)

    def test_disconnect_before_greeting_frees_slot(self):
        """Clients that hang up before the greeting (lease answer still pending) do not keep slots."""
        gate = self.gate({"concurrency": 1})
        for _ in range(3):
            c = smtp_from(self, gate.port, A)
            c.close()
        time.sleep(0.5 * SCALE)
        r, c = self.connect(gate)
        self.assertAdmitted(r, "after 3 connections from %s closed before their greeting "
                            "(concurrency = 1)" % A)
        self.quit(c)

    def test_message_rate(self):
        gate = self.gate({"message_rate": "2/2s"})
        self.align(2)
        c = self.session(gate)
        self.assertEqual(self.message(c, subject="m1").code, 250)
        self.assertEqual(self.message(c, subject="m2").code, 250)
        r = c.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 451, "third MAIL within 2/2s: %r" % r.raw)
        self.assertEqual(enhanced(r), "4.7.1", r)
        # the session goes on; the transaction was not opened
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 503)
        self.assertEqual(c.cmd("NOOP").code, 250)
        # the limit is per client, not per session
        d = self.session(gate)
        r = d.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.7.1", r)
        e = self.session(gate, B)
        self.assertEqual(self.message(e, subject="other client").code, 250)
        # after the window
        deadline = time.monotonic() + 5 * SCALE
        while True:
            r = self.message(c, subject="after window")
            if r.code == 250:
                break
            self.assertEqual(r.code, 451, r)
            self.assertLess(time.monotonic(), deadline, "MAIL still refused after the window")
            time.sleep(0.25)
        self.sink.assert_stored(self, 4)
        for s in (c, d, e):
            self.quit(s)

    def test_recipient_rate(self):
        gate = self.gate({"recipient_rate": "3/2s"})
        self.align(2)
        c = self.session(gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        for i in range(3):
            r = c.cmd("RCPT TO:<r%d@example.test>" % i)
            self.assertEqual(r.code, 250, "RCPT %d of 3: %r" % (i + 1, r.raw))
        r = c.cmd("RCPT TO:<r3@example.test>")
        self.assertEqual(r.code, 451, "RCPT 4 of a 3/2s rate: %r" % r.raw)
        self.assertEqual(enhanced(r), "4.7.1", r)
        # the accepted recipients still get the message
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message(subject="three rcpts")))
        self.assertEqual(c.reply(timeout=30).code, 250)
        m = self.sink.assert_stored(self, 1, settle=0.1)[0]
        self.assertEqual(sorted(m["rcpts"]), ["r0@example.test", "r1@example.test", "r2@example.test"])
        # another client is counted apart
        e = self.session(gate, B)
        self.assertEqual(e.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(e.cmd("RCPT TO:<x@example.test>").code, 250)
        self.assertEqual(e.cmd("RSET").code, 250)
        # after the window
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        deadline = time.monotonic() + 5 * SCALE
        while True:
            r = c.cmd("RCPT TO:<late@example.test>")
            if r.code == 250:
                break
            self.assertEqual(r.code, 451, r)
            self.assertLess(time.monotonic(), deadline, "RCPT still refused after the window")
            time.sleep(0.25)
        self.quit(c)
        self.quit(e)

    def rcpt_window_run(self, c, rcpts_per_msg, limit, tag):
        """
        Messages of rcpts_per_msg recipients until recipient_rate (limit per
        window) refuses one; returns the recipients accepted. Exactly limit
        must be, whatever the split over messages; the MAIL that comes with
        the window full is accepted (its first RCPT is the one refused).
        """
        accepted = []
        for m in range((limit + rcpts_per_msg) // rcpts_per_msg + 1):
            r = c.cmd("MAIL FROM:<a@example.test>")
            self.assertEqual(r.code, 250, "MAIL %d (%s): %r" % (m + 1, tag, r.raw))
            ok = []
            for i in range(rcpts_per_msg):
                rc = "%s-%d-%d@example.test" % (tag, m, i)
                r = c.cmd("RCPT TO:<%s>" % rc)
                if r.code != 250:
                    self.assertEqual(r.code, 451, "RCPT %s: %r" % (rc, r.raw))
                    self.assertEqual(enhanced(r), "4.7.1", r)
                    break
                ok.append(rc)
            if ok:
                self.assertEqual(c.cmd("DATA").code, 354)
                c.send(dot_stuff(make_message(subject=tag)))
                self.assertEqual(c.reply(timeout=30).code, 250)
            else:
                self.assertEqual(c.cmd("RSET").code, 250)
            accepted += ok
            if len(ok) < rcpts_per_msg:
                break
        return accepted

    def check_recipient_rate(self, limit, per_msg, tag, sizes):
        """recipient_rate = limit/2s, per_msg recipients a message: exactly limit recipients in each
        of two windows; the stored messages have the recipient counts in sizes."""
        gate = self.gate({"recipient_rate": "%d/2s" % limit})
        c = self.session(gate)
        for rnd in range(2):
            self.next_window(2)
            got = self.rcpt_window_run(c, per_msg, limit, "%s%d" % (tag, rnd))
            self.assertEqual(len(got), limit, "round %d: %r" % (rnd, got))
        msgs = self.sink.assert_stored(self, len(sizes), settle=0.1)
        self.assertEqual(sorted(len(m["rcpts"]) for m in msgs), sizes)
        return gate, c

    def test_recipient_rate_one_per_message(self):
        """One recipient per message: each rides on its MAIL's prepaid unit; exactly 3 of 3/2s."""
        self.quit(self.check_recipient_rate(3, 1, "one", [1] * 6)[1])

    def test_recipient_rate_several_per_message(self):
        """Two recipients per message against 5/2s: 2 + 2 + 1, then refused; exact again next window."""
        gate, c = self.check_recipient_rate(5, 2, "two", [1, 1, 2, 2, 2, 2])
        # another client is counted apart, prepaid recipient and all
        e = self.session(gate, B)
        self.assertEqual(self.message(e, rcpts=("x@example.test", "y@example.test")).code, 250)
        self.quit(e)
        self.quit(c)

    def test_abandoned_mail_keeps_prepaid_recipient(self):
        """
        MAIL pays for one recipient in advance; a transaction reset before
        any RCPT keeps it charged (documented: conservative by one), never
        the other way round.
        """
        gate = self.gate({"recipient_rate": "3/2s", "message_rate": "100/2s"})
        self.align(2)
        c = self.session(gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RSET").code, 250)
        # 2 of 3 left
        self.assertEqual(self.message(c, rcpts=("r1@example.test",)).code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<r2@example.test>").code, 250)
        r = c.cmd("RCPT TO:<r3@example.test>")
        self.assertEqual(r.code, 451, "the recipient paid at the abandoned MAIL should still count: %r" % r.raw)
        self.assertEqual(c.cmd("RSET").code, 250)
        # a recipient refused locally (relay) does not use the prepaid unit up
        self.next_window(2)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.test>").code // 100, 5)
        for i in range(3):
            self.assertEqual(c.cmd("RCPT TO:<ok%d@example.test>" % i).code, 250, i)
        self.assertEqual(c.cmd("RCPT TO:<ok3@example.test>").code, 451)
        self.quit(c)

    def refused_mail(self, c, frm, hold_redis):
        """
        Sends MAIL and returns its reply. hold_redis: Redis is stopped
        (SIGSTOP) for 0.3 s around it, so the backend accepts the MAIL
        before the limit's answer comes (mxgate's Redis timeout is 3 s here).
        """
        if not hold_redis:
            return c.cmd("MAIL FROM:<%s>" % frm)
        self.redis.proc.signal(signal.SIGSTOP)
        try:
            c.send(b"MAIL FROM:<%s>\r\n" % frm.encode())
            time.sleep(0.3 * SCALE)
        finally:
            self.redis.proc.signal(signal.SIGCONT)
        return c.reply(timeout=10)

    def until_window_passes(self, c, frm):
        """Sends MAIL until it is accepted (<= 5 s)."""
        deadline = time.monotonic() + 5 * SCALE
        while True:
            r = c.cmd("MAIL FROM:<%s>" % frm)
            if r.code == 250:
                return
            self.assertEqual(r.code, 451, r)
            self.assertLess(time.monotonic(), deadline, "MAIL still refused after the window")
            time.sleep(0.2)

    def test_mail_refused_leaves_nothing_at_backend(self):
        """
        message_rate refuses a MAIL (with Redis: after the backend already
        accepted it): 451 4.7.1, nothing stored, and the same session's next
        transactions work over the same warm links.
        """
        extra = {"redis": redis_section(self.redis, timeout="3s")} if self.redis else None
        gate = self.gate({"message_rate": "2/2s"}, extra=extra)
        self.align(2)
        c = self.session(gate)
        self.assertEqual(self.message(c, frm="m1@example.test", subject="m1").code, 250)
        self.assertEqual(self.message(c, frm="m2@example.test", subject="m2").code, 250)
        r = self.refused_mail(c, "refused@example.test", hold_redis=self.redis is not None)
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.7.1", r)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 503, "no transaction after the refusal")
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.until_window_passes(c, "m3@example.test")
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message(subject="m3")))
        self.assertEqual(c.reply(timeout=30).code, 250)
        self.assertEqual(self.message(c, frm="m4@example.test", subject="m4").code, 250)
        msgs = self.sink.assert_stored(self, 4, settle=0.1)
        self.assertEqual(sorted(m["mail_from"] for m in msgs),
                         ["m1@example.test", "m2@example.test", "m3@example.test", "m4@example.test"])
        if self.redis is not None:
            # the refused MAIL did reach the backend first: the path under test was taken
            self.assertRegex(gate.log(), rb"from=<refused@example.test> .*backend=b1 status=tempfail "
                                         rb"reply=\"message rate\"")
        self.quit(c)

    def test_mail_refused_backend_sees_rset(self):
        """
        What the backend sees of a refused MAIL: nothing with the embedded
        store (the refusal is known before a backend is asked); with Redis,
        MAIL then RSET, whether the backend answered first (Redis held) or
        last (a backend slow to answer MAIL); never a second MAIL on top.
        """
        cases = [(0.0, True), (0.5, False)] if self.redis is not None else [(0.0, False)]
        for delay, hold in cases:
            be = RecordingBackend(self, mail_delay=delay)
            extra = {"redis": redis_section(self.redis, timeout="3s")} if self.redis else None
            gate = self.gate({"message_rate": "1/2s"}, extra=extra, backend=be.port,
                             name="mxgate-%s" % delay)
            self.align(2)
            c = self.session(gate)
            self.assertEqual(self.message(c, frm="m1@example.test").code, 250)
            t0 = time.monotonic()
            r = self.refused_mail(c, "refused@example.test", hold_redis=hold)
            self.assertEqual(r.code, 451, r)
            self.assertEqual(enhanced(r), "4.7.1", r)
            if delay:
                self.assertGreaterEqual(time.monotonic() - t0, delay * 0.8,
                                        "answered before the backend's MAIL reply")
            self.until_window_passes(c, "m2@example.test")
            self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(dot_stuff(make_message(subject="m2")))
            self.assertEqual(c.reply(timeout=30).code, 250)
            self.quit(c)
            txns = be.transactions()
            what = "delay %s, hold %s: %r" % (delay, hold, txns)
            full = [t for t in txns if t == ["MAIL", "RCPT", "DATA", "."]]
            self.assertEqual(len(full), 2, what)
            self.assertEqual(be.messages, 2, what)
            others = [t for t in txns if t not in full]
            if self.redis is None:
                self.assertEqual(others, [], what)
            else:
                self.assertTrue(others, what)
                for t in others:
                    self.assertEqual(t, ["MAIL", "RSET"], what)

    def test_ipv6_client_over_loopback(self):
        gate = self.gate({"connection_rate": "2/1m", "message_rate": "1/1m"}, ipv6=True)
        self.align(60)
        c = self.session(gate, "::1", port=self.port6)
        msg = make_message(subject="over ::1")
        r = self.message(c, subject="over ::1")
        self.assertEqual(r.code, 250, r)
        r = c.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.7.1", r)
        self.quit(c)
        r, c = self.connect(gate, "::1", port=self.port6)
        self.assertAdmitted(r, "second connection over ::1")
        self.quit(c)
        r, c = self.connect(gate, "::1", port=self.port6)
        self.assertRefusedAtConnect(r, c, "third connection over ::1 with 2/1m")
        m = self.sink.assert_stored(self, 1, settle=0.1)[0]
        received, _ = strip_first_received(m["data"])
        self.assertIn(b"[IPv6:::1]", received, received)
        del msg

    def test_no_limits_section_no_limits(self):
        # [limits] with no keys: nothing enforced
        gate = self.gate({})
        for i in range(20):
            r, c = self.connect(gate)
            self.assertAdmitted(r, "connection %d" % i)
            c.close()


class LimitsEmbedded(LimitsCases, MxTestCase):
    use_redis = False


class LimitsRedis(LimitsCases, MxTestCase):
    use_redis = True

    def test_keys_have_ttl_and_prefix(self):
        gate = self.gate({"connection_rate": "100/1m", "concurrency": 5, "message_rate": "100/1m",
                          "recipient_rate": "100/1m"})
        prefix = re.search(r"(?m)^key_prefix = (\S+)$", open(gate.config_path).read()).group(1)
        c = self.session(gate)
        self.assertEqual(self.message(c, rcpts=("b@example.test", "c@example.test")).code, 250)
        keys = self.redis.keys("*")
        self.assertTrue(keys, "mxgate wrote nothing to Redis")
        for k in keys:
            self.assertTrue(k.startswith(prefix.encode()), "key %r lacks key_prefix %r" % (k, prefix))
            pttl = self.redis.cmd("PTTL", k)
            self.assertGreater(pttl, 0, "key %r has no TTL (PTTL %r)" % (k, pttl))
        self.quit(c)
        # the lease is gone (or expiring) once the session ended; no key without TTL either
        for k in self.redis.keys("*"):
            self.assertGreater(self.redis.cmd("PTTL", k), 0, k)


class LimitsRedisOptions(LimitsMixin, MxTestCase):
    """AUTH and unix sockets."""

    use_redis = False

    def test_password(self):
        self.redis = start_redis(self, password="s3cret-pass")
        gate = self.gate({"connection_rate": "2/1m"})
        self.align(60)
        for i in range(2):
            r, c = self.connect(gate)
            self.assertAdmitted(r, "connection %d with AUTH" % (i + 1))
            self.quit(c)
        r, c = self.connect(gate)
        self.assertRefusedAtConnect(r, c, "third connection, Redis with AUTH")
        self.assertTrue(self.redis.keys("*"), "nothing in Redis: was the limit counted elsewhere?")

    def test_wrong_password_tempfails(self):
        self.redis = start_redis(self, password="right")
        port = free_port()
        cfg = gate_config(port, [self.sink])
        cfg["redis"] = redis_section(self.redis, password="wrong", on_failure="tempfail")
        cfg["limits"] = {"connection_rate": "100/1m"}
        gate = start_mxgate(self, cfg)
        r, c = self.connect(gate)
        self.assertRefusedAtConnect(r, c, "Redis refuses the password, on_failure = tempfail")

    def test_unix_socket(self):
        self.redis = start_redis(self, unix=True)
        gate = self.gate({"connection_rate": "2/1m", "message_rate": "1/1m"})
        self.align(60)
        c = self.session(gate)
        self.assertEqual(self.message(c).code, 250)
        r = c.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 451, r)
        self.quit(c)
        r, c = self.connect(gate)
        self.assertAdmitted(r, "second connection")
        self.quit(c)
        r, c = self.connect(gate)
        self.assertRefusedAtConnect(r, c, "third connection, Redis over a unix socket")
        self.assertTrue(self.redis.keys("*"))


class LimitsRedisShared(LimitsMixin, MxTestCase):
    """Several instances on one Redis; Redis trouble."""

    use_redis = True

    def pair(self, limits, workers=1):
        """Two mxgate instances (own ports) sharing self.redis and one key_prefix."""
        rs = redis_section(self.redis)
        gates = []
        for name in ("mxgate-a", "mxgate-b"):
            port = free_port()
            cfg = gate_config(port, [self.sink], workers=workers)
            cfg["redis"] = rs
            cfg["limits"] = dict(limits)
            gates.append(start_mxgate(self, cfg, name=name))
        return gates

    def test_two_instances_one_connection_rate(self):
        ga, gb = self.pair({"connection_rate": "5/1m"}, workers=2)
        self.align(60)
        codes = []
        for g in (ga, gb, ga, gb, ga, gb):
            r, c = self.connect(g)
            codes.append(r.code)
            if r.code == 220:
                self.quit(c)
            else:
                self.assertRefusedAtConnect(r, c, "over the shared 5/1m")
        self.assertEqual(codes, [220] * 5 + [421], "A,B,A,B,A,B against one 5/1m")
        # both instances now refuse
        for g in (ga, gb):
            r, c = self.connect(g)
            self.assertRefusedAtConnect(r, c, "after the shared limit was used up")

    def test_two_instances_one_connection_rate_parallel(self):
        ga, gb = self.pair({"connection_rate": "5/1m"}, workers=2)
        self.align(60)
        results = []
        lock = threading.Lock()
        start = threading.Event()

        def one(g):
            start.wait(10)
            try:
                c = smtp_from(self, g.port, A)
                code = c.reply(timeout=15).code
            except (Closed, OSError) as e:
                code = repr(e)
            with lock:
                results.append(code)

        threads = [threading.Thread(target=one, args=(g,), daemon=True) for g in (ga, gb) * 3]
        for t in threads:
            t.start()
        start.set()
        for t in threads:
            t.join(30 * SCALE)
        self.assertEqual(sorted(map(str, results)), ["220"] * 5 + ["421"], results)

    def test_two_instances_one_message_rate(self):
        ga, gb = self.pair({"message_rate": "3/1m"})
        self.align(60)
        ca = self.session(ga)
        cb = self.session(gb)
        codes = [self.message(ca).code, self.message(cb).code, self.message(ca).code,
                 self.message(cb).code]
        self.assertEqual(codes, [250, 250, 250, 451], codes)
        self.sink.assert_stored(self, 3)

    def test_concurrency_across_instances(self):
        ga, gb = self.pair({"concurrency": 2})
        a1 = self.session(ga)
        b1 = self.session(gb)
        r, c = self.connect(ga)
        self.assertRefusedAtConnect(r, c, "third session over two instances, concurrency = 2")
        r, c = self.connect(gb)
        self.assertRefusedAtConnect(r, c, "third session over two instances, concurrency = 2")
        self.quit(b1)
        r, c = self.connect(ga)
        self.assertAdmitted(r, "session on A right after B's session ended")
        self.quit(c)
        self.quit(a1)

    def test_killed_instance_leases_expire_live_ones_refreshed(self):
        """
        kill -9 an mxgate holding 2 of concurrency = 2: refused until the
        leases expire (<= 60 s + slack). Meanwhile two sessions of another
        client on the live instance outlast the lease TTL: their leases are
        refreshed, so that client stays at its limit.
        """
        ga, gb = self.pair({"concurrency": 2})
        s1 = self.session(ga)
        s2 = self.session(ga)
        held = [self.session(gb, B), self.session(gb, B)]
        ga.proc.signal(signal.SIGKILL)
        ga.proc.wait(10)
        t_kill = time.monotonic()
        s1.close()
        s2.close()
        r, c = self.connect(gb)
        self.assertRefusedAtConnect(r, c, "right after kill -9 of the instance holding both leases")
        # the leases expire: admitted within the lease TTL (+ slack)
        self.wait_admitted(gb, A, timeout=LEASE_TTL_S + 15, interval=2.0)
        took = time.monotonic() - t_kill
        self.assertLessEqual(took, (LEASE_TTL_S + 15) * SCALE)
        # and concurrency holds again afterwards
        x1 = self.session(gb)
        x2 = self.session(gb)
        r, c = self.connect(gb)
        self.assertRefusedAtConnect(r, c, "concurrency after the stale leases expired")
        # the live sessions, older than the lease TTL by now, still count
        self.assertGreater(time.monotonic() - t_kill, LEASE_TTL_S * 0.9)
        r, c = self.connect(gb, B)
        self.assertRefusedAtConnect(r, c, "a third session of a client whose two sessions outlived "
                                    "the lease TTL (leases not refreshed?)")
        for h in held:
            self.assertEqual(h.cmd("NOOP").code, 250)
            self.quit(h)
        self.quit(x1)
        self.quit(x2)

    def test_script_flush_reloaded(self):
        """SCRIPT FLUSH mid-run: mxgate reloads its scripts (NOSCRIPT), no check fails."""
        port = free_port()
        cfg = gate_config(port, [self.sink])
        cfg["redis"] = redis_section(self.redis, on_failure="tempfail")
        cfg["limits"] = {"connection_rate": "3/1m", "concurrency": 10}
        gate = start_mxgate(self, cfg)
        self.align(60)
        r, c = self.connect(gate)
        self.assertAdmitted(r, "first connection")
        self.quit(c)
        self.assertEqual(self.redis.cmd("SCRIPT", "FLUSH"), "OK")
        for i in range(2):
            r, c = self.connect(gate)
            self.assertAdmitted(r, "connection %d after SCRIPT FLUSH (on_failure = tempfail)" % (i + 2))
            self.quit(c)
        r, c = self.connect(gate)
        self.assertRefusedAtConnect(r, c, "fourth connection against 3/1m")
        self.assertNotIn(b"cannot check", r.raw, "a store failure, not the limit: %r" % r.raw)

    def redis_down_then_up(self, gate, check_enforced):
        """Restarts self.redis on its port and waits (<= 10 s) until check_enforced() is true."""
        self.redis.start()
        deadline = time.monotonic() + 10 * SCALE
        while not check_enforced():
            self.assertLess(time.monotonic(), deadline,
                            "limits not enforced again 10 s after Redis came back")
            time.sleep(0.25)

    def test_redis_down_on_failure_allow_then_back(self):
        port = free_port()
        cfg = gate_config(port, [self.sink])
        cfg["redis"] = redis_section(self.redis, on_failure="allow", timeout="200ms")
        cfg["limits"] = {"connection_rate": "2/1m", "message_rate": "1/1m"}
        gate = start_mxgate(self, cfg)
        c = self.session(gate, B)  # a session open across the outage
        self.redis.stop()
        t0 = time.monotonic()
        for i in range(4):
            r, c2 = self.connect(gate)
            self.assertAdmitted(r, "connection %d with Redis down, on_failure = allow" % (i + 1))
            self.assertLess(time.monotonic() - t0, 5 * SCALE)
            self.quit(c2)
        self.assertEqual(self.message(c, subject="down 1").code, 250)
        self.assertEqual(self.message(c, subject="down 2").code, 250)
        self.assertIn(b"allow", gate.log(), "the fail-open decision is not logged")
        self.sink.assert_stored(self, 2, settle=0.1)

        def enforced():
            codes = []
            for _ in range(3):
                r, cc = self.connect(gate)
                codes.append(r.code)
                cc.close()
            return 421 in codes

        self.redis_down_then_up(gate, enforced)
        # exact again, for a fresh client
        self.align(60)
        for i in range(2):
            r, cc = self.connect(gate, "127.0.0.4")
            self.assertAdmitted(r, "connection %d after Redis came back" % (i + 1))
            self.quit(cc)
        r, cc = self.connect(gate, "127.0.0.4")
        self.assertRefusedAtConnect(r, cc, "third connection after Redis came back")
        self.assertTrue(gate.proc.alive())

    def test_redis_down_on_failure_tempfail_then_back(self):
        # A checks at connect; B only at MAIL (and must not need Redis to greet)
        rs = redis_section(self.redis, on_failure="tempfail", timeout="200ms")
        pa, pb = free_port(), free_port()
        cfg_a = gate_config(pa, [self.sink])
        cfg_a["redis"] = rs
        cfg_a["limits"] = {"connection_rate": "100/1m"}
        cfg_b = gate_config(pb, [self.sink])
        cfg_b["redis"] = rs
        cfg_b["limits"] = {"message_rate": "100/1m"}
        ga = start_mxgate(self, cfg_a, name="mxgate-a")
        gb = start_mxgate(self, cfg_b, name="mxgate-b")
        self.redis.stop()
        r, c = self.connect(ga)
        self.assertRefusedAtConnect(r, c, "Redis down, on_failure = tempfail, connection_rate set")
        t0 = time.monotonic()
        c = self.session(gb)
        self.assertLess(time.monotonic() - t0, 2 * SCALE, "greeting waited for Redis though no check was due")
        r = c.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 451, "MAIL with Redis down, on_failure = tempfail: %r" % r.raw)
        self.assertEqual(enhanced(r), "4.7.1", r)
        self.assertEqual(c.cmd("NOOP").code, 250)

        def usable():
            r, cc = self.connect(ga)
            cc.close()
            if r.code != 220:
                return False
            return c.cmd("MAIL FROM:<a@example.test>").code == 250

        self.redis_down_then_up(ga, usable)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message(subject="after redis came back")))
        self.assertEqual(c.reply(timeout=30).code, 250)

    def freeze_redis(self):
        """SIGSTOP the redis-server (by pid); SIGCONT in cleanup."""
        pid = self.redis.proc.pid
        self.redis.proc.signal(signal.SIGSTOP)
        self.addCleanup(lambda: self.redis.proc.signal(signal.SIGCONT))
        return pid

    def test_slow_redis_times_out(self):
        rs_allow = redis_section(self.redis, on_failure="allow", timeout="200ms")
        rs_temp = dict(rs_allow, on_failure="tempfail")
        pa, pb = free_port(), free_port()
        cfg_a = gate_config(pa, [self.sink])
        cfg_a["redis"] = rs_allow
        cfg_a["limits"] = {"connection_rate": "100/1m", "message_rate": "100/1m"}
        cfg_b = gate_config(pb, [self.sink])
        cfg_b["redis"] = rs_temp
        cfg_b["limits"] = {"connection_rate": "100/1m"}
        ga = start_mxgate(self, cfg_a, name="mxgate-allow")
        gb = start_mxgate(self, cfg_b, name="mxgate-tempfail")
        open_a = self.session(ga, B)
        self.freeze_redis()
        # a session that needs no check is not stalled
        t0 = time.monotonic()
        self.assertEqual(open_a.cmd("NOOP", timeout=2).code, 250)
        self.assertLess(time.monotonic() - t0, 0.5 * SCALE)
        # checks give up after timeout (200ms): allow ...
        t0 = time.monotonic()
        r, c = self.connect(ga)
        self.assertAdmitted(r, "Redis frozen, on_failure = allow")
        self.assertLess(time.monotonic() - t0, 2 * SCALE, "the greeting waited far past timeout = 200ms")
        self.assertEqual(c.ehlo().code, 250)
        t0 = time.monotonic()
        self.assertEqual(self.message(c, subject="frozen").code, 250)
        self.assertLess(time.monotonic() - t0, 3 * SCALE)
        # ... or tempfail
        t0 = time.monotonic()
        r, c = self.connect(gb)
        self.assertRefusedAtConnect(r, c, "Redis frozen, on_failure = tempfail")
        self.assertLess(time.monotonic() - t0, 2 * SCALE)
        # Redis back: checks work again
        self.redis.proc.signal(signal.SIGCONT)
        deadline = time.monotonic() + 10 * SCALE
        while True:
            r, c = self.connect(gb)
            if r.code == 220:
                self.quit(c)
                break
            c.close()
            self.assertLess(time.monotonic(), deadline, "still tempfailing 10 s after Redis resumed")
            time.sleep(0.25)


if __name__ == "__main__":
    unittest.main()
