"""
Signals: SIGTERM drains (listeners closed at once, open sessions finish,
exit 0 within drain_timeout); SIGHUP reloads (open sessions finish under
their config, new sessions get the new one; a broken file keeps the old
config and the log names FILE:LINE).
"""

import signal
import socket
import time
import unittest

from harness import (CRLF, Closed, MxTestCase, SCALE, dot_stuff, free_port, gate_config,
                     make_message, render_config, start_mxgate, start_mxsink)


def try_connect(port, timeout=1.0):
    """'refused', 'reset', 'accepted' or 'timeout'."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except ConnectionResetError:
        # Queued on a listener as it was being closed: reset, never served.
        return "reset"
    except (socket.timeout, TimeoutError):
        return "timeout"
    s.close()
    return "accepted"


class Drain(MxTestCase):
    def test_sigterm_with_20_sessions_mid_transaction(self):
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [sink], workers=2,
                                              server={"drain_timeout": "20s"}))
        sessions = []
        for i in range(20):
            c = self.open_session(gate)
            self.assertEqual(c.cmd("MAIL FROM:<s%d@example.test>" % i).code, 250)
            self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            msg = make_message(subject="drain %d" % i, body=(b"line of session %d\r\n" % i) * 200)
            wire = dot_stuff(msg)
            half = len(wire) // 2
            c.send(wire[:half])
            sessions.append((c, msg, wire[half:], "s%d@example.test" % i))
        time.sleep(0.2)

        gate.proc.signal(signal.SIGTERM)
        t0 = time.monotonic()
        # new connections are refused at once (not accepted, not left hanging)
        deadline = t0 + 1.0 * SCALE
        state = None
        while time.monotonic() < deadline:
            state = try_connect(port, timeout=0.5)
            if state == "refused":
                break
            time.sleep(0.02)
        self.assertEqual(state, "refused", "listener still there %.2fs after SIGTERM"
                         % (time.monotonic() - t0))
        self.assertTrue(gate.proc.alive(), "mxgate exited with sessions open")

        # the open sessions finish
        for c, msg, rest, frm in sessions:
            c.send(rest)
        for c, msg, rest, frm in sessions:
            r = c.reply(timeout=15)
            self.assertEqual(r.code, 250, (frm, r))
            try:
                c.send(b"QUIT\r\n")
                r = c.reply(timeout=5)
                self.assertEqual(r.code, 221, r)
            except (Closed, ConnectionError):
                pass  # mxgate may close a draining session after its transaction
        self.assertEqual(try_connect(port), "refused")

        rc = gate.proc.wait(timeout=20)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 20 * SCALE)

        stored = sink.assert_stored(self, 20)
        by_from = {m["mail_from"]: m for m in stored}
        for c, msg, rest, frm in sessions:
            self.assertIn(frm, by_from)
            self.assertDeliveredExact(by_from[frm], msg, frm, ["b@example.test"])

    def test_sigterm_exits_quickly_when_idle(self):
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [sink], server={"drain_timeout": "20s"}))
        c = self.open_session(gate)
        self.assertEqual(c.cmd("QUIT").code, 221)
        t0 = time.monotonic()
        gate.proc.signal(signal.SIGTERM)
        self.assertEqual(gate.proc.wait(timeout=5), 0)
        self.assertLess(time.monotonic() - t0, 5 * SCALE)

    def test_drain_timeout_ends_stuck_sessions(self):
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [sink], server={"drain_timeout": "2s"}))
        idle = self.open_session(gate)
        stuck = self.open_session(gate)
        self.assertEqual(stuck.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(stuck.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(stuck.cmd("DATA").code, 354)
        stuck.send(b"Subject: never finished\r\n\r\npart")
        t0 = time.monotonic()
        gate.proc.signal(signal.SIGTERM)
        rc = gate.proc.wait(timeout=8)
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, "exit status after drain_timeout")
        self.assertGreater(elapsed, 1.0, "sessions were not given drain_timeout")
        self.assertTrue(idle.expect_closed(2))
        self.assertTrue(stuck.expect_closed(2))
        sink.assert_stored(self, 0)


class Reload(MxTestCase):
    def setUp(self):
        super().setUp()
        self.sink = start_mxsink(self)
        self.port = free_port()
        self.cfg = gate_config(self.port, [self.sink], relay_domains="example.test")
        self.gate = start_mxgate(self, self.cfg)

    def rcpt_code(self, rcpt):
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<probe@example.test>").code, 250)
        code = c.cmd("RCPT TO:<%s>" % rcpt).code
        c.cmd("QUIT")
        c.close()
        return code

    def wait_new_config(self):
        deadline = time.monotonic() + 5 * SCALE
        while time.monotonic() < deadline:
            if self.rcpt_code("x@other.test") == 250:
                return
            time.sleep(0.1)
        self.fail("the new relay_domains did not apply within 5 s of SIGHUP:\n"
                  + self.gate.proc.log_tail())

    def test_sighup_open_session_completes_and_new_config_applies(self):
        self.assertIn(self.rcpt_code("x@other.test"), (550, 554))
        a = self.open_session(self.gate)
        self.assertEqual(a.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(a.cmd("RCPT TO:<b@example.test>").code, 250)

        new = gate_config(self.port, [self.sink], relay_domains="other.test")
        self.gate.write_config(new)
        self.gate.reload()
        self.wait_new_config()
        self.assertTrue(self.gate.proc.alive())

        # the open session goes on under the config it began with
        self.assertEqual(a.cmd("RCPT TO:<c@example.test>").code, 250)
        self.assertEqual(a.cmd("DATA").code, 354)
        msg = make_message(subject="across reload")
        a.send(dot_stuff(msg))
        self.assertEqual(a.reply().code, 250)
        self.assertEqual(a.cmd("QUIT").code, 221)

        # new sessions: the new relay_domains
        self.assertIn(self.rcpt_code("b@example.test"), (550, 554))
        self.assertEqual(self.rcpt_code("y@other.test"), 250)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg, "a@example.test", ["b@example.test", "c@example.test"])

    def test_sighup_mid_data(self):
        a = self.open_session(self.gate)
        self.assertEqual(a.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(a.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(a.cmd("DATA").code, 354)
        msg = make_message(subject="mid data", body=b"0123456789\r\n" * 5000)
        wire = dot_stuff(msg)
        a.send(wire[:30000])
        self.gate.write_config(gate_config(self.port, [self.sink], relay_domains="other.test"))
        self.gate.reload()
        self.wait_new_config()
        a.send(wire[30000:])
        self.assertEqual(a.reply().code, 250)
        m = self.sink.assert_stored(self, 1)[0]
        self.assertDeliveredExact(m, msg)

    def test_sighup_broken_file(self):
        a = self.open_session(self.gate)
        self.assertEqual(a.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(a.cmd("RCPT TO:<b@example.test>").code, 250)

        broken = dict(gate_config(self.port, [self.sink], relay_domains="other.test"))
        text = render_config(broken)
        lines = text.split("\n")
        # a bad key right after the [server] header: line 2
        self.assertEqual(lines[0], "[server]")
        lines.insert(1, "no_such_key = 1")
        bad_line = 2
        self.gate.write_config("\n".join(lines))
        self.gate.reload()

        expect = ("%s:%d" % (self.gate.config_path, bad_line)).encode()
        deadline = time.monotonic() + 5 * SCALE
        while expect not in self.gate.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(expect, self.gate.log(), "the log does not name FILE:LINE")
        self.assertTrue(self.gate.proc.alive(), "mxgate died on a broken reload")

        # the old config stays in force
        self.assertEqual(self.rcpt_code("b@example.test"), 250)
        self.assertIn(self.rcpt_code("x@other.test"), (550, 554))
        # the open session was not dropped
        self.assertEqual(a.cmd("DATA").code, 354)
        msg = make_message(subject="across broken reload")
        a.send(dot_stuff(msg))
        self.assertEqual(a.reply().code, 250)
        self.sink.assert_stored(self, 1)

        # a fixed file then loads
        self.gate.write_config(gate_config(self.port, [self.sink], relay_domains="other.test"))
        self.gate.reload()
        self.wait_new_config()

    def test_sighup_bad_value(self):
        text = render_config(gate_config(self.port, [self.sink]))
        lines = text.split("\n")
        i = next(n for n, l in enumerate(lines) if l.startswith("drain_timeout"))
        lines[i] = "drain_timeout = soon"
        self.gate.write_config("\n".join(lines))
        self.gate.reload()
        expect = ("%s:%d" % (self.gate.config_path, i + 1)).encode()
        deadline = time.monotonic() + 5 * SCALE
        while expect not in self.gate.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(expect, self.gate.log())
        self.assertTrue(self.gate.proc.alive())
        self.assertEqual(self.rcpt_code("b@example.test"), 250)

    def test_sighup_adds_listener(self):
        port2 = free_port()
        cfg = gate_config(self.port, [self.sink])
        cfg["listener second"] = {"listen": "127.0.0.1:%d" % port2, "relay_domains": "example.test"}
        self.gate.write_config(cfg)
        self.gate.reload()
        deadline = time.monotonic() + 5 * SCALE
        while try_connect(port2, 0.5) != "accepted" and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(try_connect(port2), "accepted", "new listener not opened by SIGHUP")
        # and removed again
        self.gate.write_config(gate_config(self.port, [self.sink]))
        self.gate.reload()
        deadline = time.monotonic() + 5 * SCALE
        while try_connect(port2, 0.5) != "refused" and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(try_connect(port2), "refused", "removed listener still open")
        self.assertEqual(self.rcpt_code("b@example.test"), 250)


if __name__ == "__main__":
    unittest.main()
