"""
The backend pool: no backend reachable, a dead or unwilling backend next
to a healthy one, a backend that fails in the middle of DATA, and the
weighted round-robin split.
"""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import threading
import time
import unittest

from harness import (enhanced, CRLF, Closed, MxTestCase, SCALE, dot_stuff, free_port, gate_config,
                     make_message, port_open, start_mxgate, start_mxsink, ThreadedBackend, wait_until)



class FakeBackend(ThreadedBackend):
    """
    A tiny SMTP server on 127.0.0.1 with scripted faults:
      mode "close_mid_data": closes the connection after close_after bytes of DATA;
      mode "greet_421": greets with 421 and closes;
      mode "dsn": a healthy backend that also offers DSN;
      mode "slow_dsn": the same, greeting only after 0.5 s;
      mode "mute": accepts connections and never says a word;
      mode "long_replies": answers RCPT with 100 continuation lines (8 KB) before the last;
      mode "refuse_data": answers DATA with 554;
      mode "close_at_data": closes the connection on DATA;
      mode "silent_mail": never answers MAIL;
      mode "close_after_mail": accepts MAIL, then closes the connection;
      mode "421_after_mail": accepts MAIL, then says 421 unasked and closes.
    Records what it saw (command lines in self.commands). Stopped by the test's cleanup.
    """

    def __init__(self, test, mode, close_after=1000):
        self.mode = mode
        self.close_after = close_after
        self.connections = 0
        self.data_bytes = 0
        self.final_dot_seen = False
        self.transactions = 0
        self.commands = []
        super().__init__(test)

    def accepted(self, sock):
        self.connections += 1
        return ()

    def serve(self, s):
        s.settimeout(0.2)
        try:
            if self.mode in ("slow_dsn", "mute"):
                # a backend slow to greet, or that never does
                self.stop.wait(0.5 if self.mode == "slow_dsn" else 30)
                if self.mode == "mute":
                    return
            if self.mode == "greet_421":
                s.sendall(b"421 4.3.2 fake backend not available\r\n")
                s.close()
                return
            s.sendall(b"220 fake.backend ESMTP\r\n")
            buf = b""
            in_data = False
            data_seen = 0
            tail = b""
            while not self.stop.is_set():
                chunk = self.recv(s)
                if chunk is None:
                    continue
                if not chunk:
                    return
                if in_data:
                    with self.lock:
                        self.data_bytes += len(chunk)
                    data_seen += len(chunk)
                    if (tail + chunk).find(b"\r\n.\r\n") >= 0:
                        with self.lock:
                            self.final_dot_seen = True
                    tail = (tail + chunk)[-4:]
                    if data_seen >= self.close_after:
                        s.close()
                        return
                    continue
                buf += chunk
                while b"\n" in buf and not in_data:
                    line, buf = buf.split(b"\n", 1)
                    with self.lock:
                        self.commands.append(line.rstrip(b"\r"))
                    verb = line.strip().split(b" ")[0].upper()
                    if verb in (b"EHLO", b"LHLO"):
                        dsn = b"250-DSN\r\n" if self.mode in ("dsn", "slow_dsn") else b""
                        s.sendall(b"250-fake.backend\r\n250-PIPELINING\r\n250-8BITMIME\r\n" + dsn +
                                  b"250-SMTPUTF8\r\n250-ENHANCEDSTATUSCODES\r\n250 SIZE 104857600\r\n")
                    elif verb == b"MAIL" and self.mode == "silent_mail":
                        pass
                    elif verb == b"HELO":
                        s.sendall(b"250 fake.backend\r\n")
                    elif verb == b"MAIL":
                        with self.lock:
                            self.transactions += 1
                        s.sendall(b"250 2.1.0 ok\r\n")
                        if self.mode in ("close_after_mail", "421_after_mail"):
                            time.sleep(0.2)
                            if self.mode == "421_after_mail":
                                s.sendall(b"421 4.3.2 shutting down\r\n")
                            s.close()
                            return
                    elif verb == b"RCPT" and self.mode == "long_replies":
                        s.sendall(b"".join(b"250-2.1.5 line %03d %s\r\n" % (i, b"x" * 60)
                                           for i in range(100)) + b"250 2.1.5 ok, at last\r\n")
                    elif verb == b"RCPT":
                        s.sendall(b"250 2.1.5 ok\r\n")
                    elif verb == b"DATA" and self.mode == "close_at_data":
                        s.close()
                        return
                    elif verb == b"DATA" and self.mode == "refuse_data":
                        s.sendall(b"554 5.3.0 no data today\r\n")
                    elif verb == b"DATA":
                        s.sendall(b"354 go ahead\r\n")
                        in_data = True
                        if buf:
                            with self.lock:
                                self.data_bytes += len(buf)
                            data_seen += len(buf)
                            buf = b""
                    elif verb == b"QUIT":
                        s.sendall(b"221 2.0.0 bye\r\n")
                        s.close()
                        return
                    else:  # RSET NOOP XFORWARD ...
                        s.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            return


class Backends(MxTestCase):
    def test_backend_down(self):
        dead = free_port()
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [dead]))
        c = self.open_session(gate)
        t0 = time.monotonic()
        r = c.cmd("MAIL FROM:<a@example.test>", timeout=30)
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.4.1", r)
        self.assertLess(time.monotonic() - t0, 15 * SCALE)
        # the session goes on
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def deliver_all(self, gate, sink, n_conn=10, per_conn=3):
        sent = {}
        for i in range(n_conn):
            s = smtplib.SMTP("127.0.0.1", gate.port, local_hostname="client.example.test",
                             timeout=30 * SCALE)
            try:
                for j in range(per_conn):
                    frm = "c%d-m%d@example.test" % (i, j)
                    msg = make_message(subject=frm, body=b"body %d %d\r\n" % (i, j))
                    self.assertEqual(s.sendmail(frm, ["b@example.test"], msg), {})
                    sent[frm] = msg
                s.quit()
            finally:
                s.close()
        stored = sink.assert_stored(self, len(sent))
        by_from = {m["mail_from"]: m for m in stored}
        for frm, msg in sent.items():
            self.assertIn(frm, by_from)
            self.assertDeliveredExact(by_from[frm], msg)

    def test_one_backend_refuses_connections(self):
        dead = free_port()
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [dead, sink]))
        self.deliver_all(gate, sink)

    def test_one_backend_greets_421(self):
        fake = FakeBackend(self, "greet_421")
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [fake.port, sink]))
        self.deliver_all(gate, sink)
        self.assertEqual(fake.transactions, 0)

    def test_backend_closes_mid_data(self):
        fake = FakeBackend(self, "close_mid_data", close_after=2000)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [fake.port]))
        c = self.open_session(gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        body = (b"0123456789" * 99 + CRLF) * 300  # ~300 KB
        wire = dot_stuff(make_message(body=body))
        try:
            c.send(wire)
        except ConnectionError:
            pass  # mxgate may stop reading once it has answered
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.4.2", r)
        time.sleep(0.3)
        self.assertGreater(fake.data_bytes, 0, "the backend got no DATA bytes at all")
        self.assertFalse(fake.final_dot_seen, "the backend saw the end of data")

    def test_backend_closes_mid_data_then_healthy_again(self):
        # after a failure, the next transaction on the same session can use
        # another (healthy) backend
        fake = FakeBackend(self, "close_mid_data", close_after=1000)
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [{"address": fake.port, "weight": 1},
                                                     {"address": sink, "weight": 1}]))
        results = []
        for i in range(6):
            c = self.open_session(gate)
            # large enough that the fake backend's first read cannot hold the end of data
            msg = make_message(subject="try %d" % i, body=(b"x" * 500 + CRLF) * 600)
            try:
                r = self.send_message(c, "a%d@example.test" % i, ["b@example.test"], dot_stuff(msg),
                                      expect_final=None)
            except Closed:
                self.fail("mxgate closed the session instead of answering 451")
            results.append(r.code)
            self.assertIn(r.code, (250, 451), r)
            if r.code == 451:
                self.assertEqual(enhanced(r), "4.4.2", r)
            c.cmd("QUIT")
        self.assertIn(250, results)
        stored = sink.assert_stored(self, results.count(250))
        self.assertFalse(fake.final_dot_seen)
        self.assertEqual(len(stored), results.count(250))

    def fake_gate(self, mode, server=None):
        """A FakeBackend in mode, and mxgate in front of it alone."""
        fb = FakeBackend(self, mode)
        gate = start_mxgate(self, gate_config(free_port(), ["127.0.0.1:%d" % fb.port], server=server))
        return fb, gate

    def ehlo_keywords(self, gate):
        c = self.open_session(gate, ehlo=False)
        r = c.ehlo()
        self.assertEqual(r.code, 250, r)
        return c, {l.split(b" ")[0].upper() for l in r.lines[1:]}

    def test_dsn_parameters_passed_through(self):
        """A DSN backend: EHLO offers DSN, and DSN/8BITMIME/SMTPUTF8 parameters reach it as sent."""
        fb, gate = self.fake_gate("dsn")
        c, kw = self.ehlo_keywords(gate)  # learned before mxgate listens
        self.assertIn(b"DSN", kw)
        r = c.cmd("MAIL FROM:<a@example.test> RET=HDRS ENVID=id+2B1 BODY=8BITMIME SMTPUTF8")
        self.assertEqual(r.code, 250, r)
        r = c.cmd("RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.test")
        self.assertEqual(r.code, 250, r)
        self.assertEqual(c.cmd("RSET").code, 250)
        with fb.lock:
            cmds = list(fb.commands)
        self.assertIn(b"MAIL FROM:<a@example.test> RET=HDRS ENVID=id+2B1 BODY=8BITMIME SMTPUTF8", cmds)
        self.assertIn(b"RCPT TO:<b@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@example.test", cmds)

    def test_dsn_learned_once_backend_recovers(self):
        """A backend unwilling at start: once it is back, an EHLO opens a link to it, so later sessions offer DSN."""
        fb, gate = self.fake_gate("greet_421")
        wait_until(lambda: fb.connections >= 1, 5 * SCALE, what="the start-up link to the backend")
        with fb.lock:
            fb.mode = "dsn"
        time.sleep(2.3)  # past the 2 s a failed backend is skipped
        c, kw = self.ehlo_keywords(gate)
        self.assertNotIn(b"DSN", kw)  # nothing learned yet: not offered
        c.close()
        deadline = time.monotonic() + 5 * SCALE
        while True:
            c, kw = self.ehlo_keywords(gate)
            if b"DSN" in kw or time.monotonic() > deadline:
                break
            c.close()
            time.sleep(0.1)
        self.assertIn(b"DSN", kw)
        self.assertEqual(fb.transactions, 0, "learned without a transaction")

    def test_no_new_link_while_draining(self):
        """An EHLO during the drain does not open a link to a backend not yet learned."""
        fb = FakeBackend(self, "greet_421")
        sink = start_mxsink(self)
        gate = start_mxgate(self, gate_config(free_port(), [{"address": sink, "weight": 1000},
                                                            {"address": fb.port, "weight": 1}]))
        wait_until(lambda: fb.connections >= 1, 5 * SCALE, what="the start-up link to the backend")
        with fb.lock:
            fb.mode = "dsn"
        time.sleep(2.3)  # past the 2 s a failed backend is skipped: only the drain holds a link back
        c = self.open_session(gate, ehlo=False)
        self.assertEqual(c.cmd("HELO client.example.test").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)  # to the sink, by weight
        gate.proc.signal(signal.SIGTERM)
        wait_until(lambda: not port_open(gate.port), 5 * SCALE, what="the listener closed")
        # mid-transaction the session still takes commands; EHLO asks about every backend
        r = c.ehlo()
        self.assertEqual(r.code, 250, r)
        self.assertNotIn(b"DSN", r.raw)
        time.sleep(0.5)
        self.assertEqual(fb.connections, 1, "a link opened while draining")
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assertEqual(gate.proc.wait(10), 0)

    def test_first_ehlo_offers_dsn_of_slow_backend(self):
        """mxgate listens once its backends have answered EHLO, so even the first client's EHLO offers DSN."""
        fb, gate = self.fake_gate("slow_dsn")
        c, kw = self.ehlo_keywords(gate)
        self.assertIn(b"DSN", kw)

    def test_mute_backend_delays_listening_at_most_a_second(self):
        """A backend that never greets: mxgate still listens, about a second after start, and says why in its log."""
        t0 = time.monotonic()
        fb, gate = self.fake_gate("mute")
        self.assertLess(time.monotonic() - t0, 5 * SCALE)
        c, kw = self.ehlo_keywords(gate)
        self.assertNotIn(b"DSN", kw)
        self.assertIn(b"has not answered EHLO within 1000 ms", gate.log())
        c.close()
        # the link still waiting for a greeting does not hold the exit up (nor leak)
        t1 = time.monotonic()
        gate.proc.signal(signal.SIGTERM)
        self.assertEqual(gate.proc.wait(10 * SCALE), 0)
        self.assertLess(time.monotonic() - t1, 1.5 if SCALE == 1 else 5)

    def test_reply_longer_than_buffer(self):
        """A backend reply over mxgate's 4 KB reply buffer still ends where the backend ends it: relayed at once, cut short, well-formed."""
        fb, gate = self.fake_gate("long_replies", server={"timeout_command": "20s"})
        c = self.open_session(gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        t0 = time.monotonic()
        r = c.cmd("RCPT TO:<b@example.test>", timeout=15)
        self.assertLess(time.monotonic() - t0, 5 * SCALE, "the reply's end was missed")
        self.assertEqual(r.code, 250, r)
        self.assertLess(len(r.raw), 4200)
        for line in r.raw.split(b"\r\n")[:-1]:
            self.assertRegex(line, rb"^250[- ]")
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def data_twice(self, mode):
        """Two transactions through a fake backend in mode: the replies to their DATA; the session goes on."""
        fb, gate = self.fake_gate(mode)
        c = self.open_session(gate)
        replies = []
        for _ in range(2):
            self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
            replies.append(c.cmd("DATA"))
            self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("QUIT").code, 221)
        with fb.lock:
            self.assertEqual(fb.transactions, 2)
        return replies

    def test_backend_refuses_data(self):
        """The backend's refusal of DATA is relayed as it is."""
        for r in self.data_twice("refuse_data"):
            self.assertEqual((r.code, r.lines[0]), (554, b"5.3.0 no data today"), r)

    def test_backend_lost_at_data(self):
        """The backend closes on DATA: 451 4.4.2, and the next transaction gets a new link."""
        for r in self.data_twice("close_at_data"):
            self.assertEqual(r.code, 451, r)
            self.assertEqual(enhanced(r), "4.4.2", r)

    def test_no_dsn_without_backend_support(self):
        """No backend offers DSN: EHLO does not, and RET=/NOTIFY= get 555 5.5.4 without reaching it."""
        fb, gate = self.fake_gate("plain")
        c, kw = self.ehlo_keywords(gate)
        self.assertNotIn(b"DSN", kw)
        r = c.cmd("MAIL FROM:<a@example.test> RET=FULL")
        self.assertEqual(r.code, 555, r)
        self.assertEqual(enhanced(r), "5.5.4")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        r = c.cmd("RCPT TO:<b@example.test> NOTIFY=NEVER")
        self.assertEqual(r.code, 555, r)
        with fb.lock:
            self.assertFalse([x for x in fb.commands if b"RET=" in x or b"NOTIFY=" in x], fb.commands)

    def test_backend_silent_after_mail(self):
        """A backend that never answers MAIL: the client gets 451 4.4.1 after the reply timeout, not a hang."""
        fb, gate = self.fake_gate("silent_mail", server={"timeout_command": "1s"})
        c = self.open_session(gate)
        t0 = time.monotonic()
        r = c.cmd("MAIL FROM:<a@example.test>", timeout=15)
        self.assertEqual(r.code, 451, r)
        self.assertEqual(enhanced(r), "4.4.1")
        self.assertLess(time.monotonic() - t0, 10 * SCALE)
        # the session is still usable
        self.assertEqual(c.cmd("NOOP").code, 250)

    def test_backend_gone_between_commands(self):
        """The backend drops a link (or says 421 unasked) after MAIL, while the client is between
        commands: the next RCPT gets 451 4.4.2, never a dangling link, and the session goes on."""
        for mode in ("close_after_mail", "421_after_mail"):
            fb, gate = self.fake_gate(mode)
            c = self.open_session(gate)
            self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
            time.sleep(0.6)     # the backend is gone by now
            r = c.cmd("RCPT TO:<b@example.test>")
            self.assertEqual(r.code, 451, (mode, r))
            self.assertEqual(enhanced(r), "4.4.2")
            # the transaction is over: a new one may start (this backend accepts MAIL again)
            self.assertEqual(c.cmd("RSET").code, 250)
            r = c.cmd("MAIL FROM:<a@example.test>")
            self.assertEqual(r.code, 250, (mode, r))
            time.sleep(0.6)
            r = c.cmd("RCPT TO:<b@example.test>")
            self.assertEqual(r.code, 451, (mode, r))
            self.assertEqual(c.cmd("NOOP").code, 250)
            self.assertTrue(gate.proc.alive(), mode)

    def test_weights(self):
        s1 = start_mxsink(self, name="sink-w1")
        s3 = start_mxsink(self, name="sink-w3")
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [{"address": s1, "weight": 1},
                                                     {"address": s3, "weight": 3}]))
        n = 0
        for i in range(10):
            s = smtplib.SMTP("127.0.0.1", gate.port, local_hostname="client.example.test",
                             timeout=30 * SCALE)
            try:
                for j in range(20):
                    msg = make_message(subject="w %d %d" % (i, j))
                    self.assertEqual(s.sendmail("a@example.test", ["b@example.test"], msg), {})
                    n += 1
                s.quit()
            finally:
                s.close()
        deadline = time.monotonic() + 10 * SCALE
        while s1.count() + s3.count() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        c1, c3 = s1.count(), s3.count()
        self.assertEqual(c1 + c3, n, (c1, c3))
        self.assertTrue(0.15 * n <= c1 <= 0.35 * n, "weight 1:3 gave %d:%d" % (c1, c3))

    def link_congestion(self, sink_port):
        """The congestion control names ss reports for the links to sink_port."""
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            names = f.read().split()
        out = subprocess.run(["ss", "-tinH", "state", "established", "( dport = :%d )" % sink_port],
                             capture_output=True, text=True, timeout=10).stdout
        return [w for w in re.findall(r"[a-z0-9_]+", out) if w in names]

    def test_congestion_control(self):
        """Links to a backend use its congestion_control (default cubic); system keeps the system's."""
        if shutil.which("ss") is None:
            self.skipTest("ss (iproute2) not installed")
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            available = f.read().split()
        with open("/proc/sys/net/ipv4/tcp_congestion_control") as f:
            system = f.read().strip()
        cases = [(None, "cubic"), ("reno", "reno"), ("system", system)]
        for value, want in cases:
            if want not in available:
                continue
            with self.subTest(congestion_control=value):
                sink = start_mxsink(self, name="sink-cc-%s" % value)
                port = free_port()
                b = {"address": sink}
                if value:
                    b["congestion_control"] = value
                gate = start_mxgate(self, gate_config(port, [b]), name="mxgate-cc-%s" % value)
                s = smtplib.SMTP("127.0.0.1", gate.port, local_hostname="client.example.test",
                                 timeout=30 * SCALE)
                try:
                    self.assertEqual(s.sendmail("a@example.test", ["b@example.test"],
                                                make_message(subject="cc")), {})
                    got = self.link_congestion(sink.port)
                finally:
                    s.quit()
                self.assertTrue(got, "no link to the backend seen by ss")
                self.assertEqual(set(got), {want}, got)
                self.assertNotIn(b"cannot be set", gate.log())
                gate.proc.stop()
                sink.proc.stop()

    def test_congestion_control_refused(self):
        """A congestion control the kernel does not know is a config error with its line."""
        port = free_port()
        cfg = gate_config(port, [{"address": free_port(), "congestion_control": "nosuch_cc"}])
        gate = start_mxgate(self, cfg, wait=False)
        self.assertEqual(gate.proc.wait(10), 1)
        self.assertRegex(gate.log(), rb"mxgate\.conf:\d+: backend b1: congestion_control = nosuch_cc "
                                     rb"cannot be used here")


if __name__ == "__main__":
    unittest.main()
