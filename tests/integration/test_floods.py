"""
Abusive clients: a flood of pipelined commands from a client that does
not read its replies, an endless command line, and a message that goes
on past the size limit. mxgate's memory must stay bounded, every reply
must still come in order, and the session must go on (or end cleanly).
"""

import os
import socket
import threading
import time
import unittest

from harness import MxTestCase, start_gate_and_sink


# AddressSanitizer keeps freed memory in quarantine, so RSS grows with any
# allocation churn: under it the bounds are looser and the inputs larger.
SANITIZED = os.environ.get("MXGATE_SANITIZED") == "1"
RSS_BOUND_KB = (48 if SANITIZED else 4) * 1024
LONG_LINE_CHUNKS = 1600 if SANITIZED else 160      # x 64 KB
if SANITIZED:
    # A small quarantine, so freed blocks are reused as they are without ASan.
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class Floods(MxTestCase):
    def setUp(self):
        super().setUp()
        self.gate, self.sink = start_gate_and_sink(
            self, server={"max_message_size": "1M", "max_errors": 5})

    def test_unread_replies_bounded(self):
        """70 MB of replies owed to a client that reads nothing: RSS stays bounded, then all arrive in order."""
        n = 5_000_000
        data = b"NOOP\r\n" * n
        reply = b"250 2.0.0 Ok\r\n"
        s = socket.create_connection(("127.0.0.1", self.gate.port), timeout=10)
        self.addCleanup(s.close)
        self.assertTrue(s.recv(1000).startswith(b"220 "))
        self.warm_up()
        before = rss_kb(self.gate.proc.pid)
        # Write without reading until the kernel buffers on both sides are full.
        s.setblocking(False)
        off, deadline = 0, time.time() + 3
        while off < len(data) and time.time() < deadline:
            try:
                off += s.send(data[off:off + 65536])
            except BlockingIOError:
                time.sleep(0.005)
        self.assertLess(off, len(data), "mxgate read everything without anyone reading its replies")
        grown = rss_kb(self.gate.proc.pid) - before
        self.assertLess(grown, RSS_BOUND_KB, "RSS grew by %d KB while replies piled up" % grown)
        got = bytearray()
        s.setblocking(True)
        s.settimeout(10)

        def reader():
            while len(got) < n * len(reply):
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got.extend(chunk)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data[off:])
        t.join(60)
        self.assertEqual(len(got), n * len(reply), "replies missing")
        self.assertEqual(got.count(reply), n)

    def warm_up(self):
        """Read 10 MB through mxgate's receive-buffer pool once, so RSS measures growth, not first use."""
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send((b"w" * 998 + b"\r\n") * 10240 + b".\r\n")
        self.assertEqual(c.reply().code, 552)
        c.close()

    def test_endless_line(self):
        """10 MB (100 MB under ASan) without a line end: one 500 5.5.2 when it ends, memory bounded."""
        self.warm_up()
        c = self.open_session(self.gate)
        before = rss_kb(self.gate.proc.pid)
        chunk = b"X" * 65536
        for _ in range(LONG_LINE_CHUNKS):
            c.send(chunk)
        grown = rss_kb(self.gate.proc.pid) - before
        self.assertLess(grown, RSS_BOUND_KB, "RSS grew by %d KB for one long line" % grown)
        c.send(b"\r\n")
        r = c.reply()
        self.assertEqual(r.code, 500, r)
        self.assertTrue(r.lines[0].startswith(b"5.5.2"), r)
        self.assertEqual(c.cmd("NOOP").code, 250)

    def test_data_past_size_limit(self):
        """3 MB of DATA against a 1 MB limit: 552 5.3.4 after the real end, nothing delivered."""
        c = self.open_session(self.gate)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        line = b"y" * 998 + b"\r\n"
        for _ in range(3 * 1024):
            c.send(line)
        c.send(b".\r\n")
        r = c.reply()
        self.assertEqual(r.code, 552, r)
        self.assertTrue(r.lines[0].startswith(b"5.3.4"), r)
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.sink.assert_stored(self, 0)

    def test_many_connections(self):
        """500 clients at once all get the greeting and are served."""
        socks = []
        try:
            for _ in range(500):
                socks.append(socket.create_connection(("127.0.0.1", self.gate.port), timeout=10))
            for s in socks:
                self.assertTrue(s.recv(100).startswith(b"220 "))
            for s in socks:
                s.sendall(b"QUIT\r\n")
            for s in socks:
                self.assertTrue(s.recv(100).startswith(b"221 "))
        finally:
            for s in socks:
                s.close()


if __name__ == "__main__":
    unittest.main()
