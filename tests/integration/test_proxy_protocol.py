"""
The HAProxy PROXY protocol on listeners (proxy_protocol = v1 | v2 | auto,
proxy_trusted): headers sent by the tests (v1 text, v2 binary, IPv4 and
IPv6, split over several writes, with TLVs, LOCAL/UNKNOWN) and by a real
haproxy with send-proxy / send-proxy-v2. Honoured from trusted peers only:
limits, access lists, logs and the Received: header then use the address
the header carries; untrusted peers, malformed headers and the wrong
version are closed without a greeting. IPv6 sources within one
ipv6_prefix count together, across prefixes apart.
"""

import socket
import time
import unittest

from harness import (enhanced, Closed, MxTestCase, SCALE, align_window, dot_stuff, free_port, gate_config,
                     make_message, proxy_v1, proxy_v2, redis_section, smtp_from, start_haproxy, start_mxgate,
                     start_mxsink, start_redis, strip_first_received)



def read_until_closed(c, timeout=5.0):
    """(bytes received, closed?) reading c's socket until EOF or timeout."""
    data = c.buf
    c.buf = b""
    deadline = time.monotonic() + timeout * SCALE
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        c.sock.settimeout(left)
        try:
            chunk = c.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            return data, False
        except (ConnectionResetError, OSError):
            return data, True
        if not chunk:
            return data, True
        data += chunk


class ProxyBase(MxTestCase):
    def setUp(self):
        super().setUp()
        self.sink = start_mxsink(self)

    def gate(self, mode, trusted="127.0.0.0/8, ::1/128", limits=None, access=None, redis=None,
             server=None, ipv6=False, name="mxgate", port=None):
        port = port or free_port()
        lst = {"proxy_protocol": mode, "proxy_trusted": trusted}
        cfg = gate_config(port, [self.sink], listener=lst, server=server)
        if ipv6:
            self.port6 = free_port(socket.AF_INET6)
            cfg["listener in"]["listen"] = "127.0.0.1:%d, [::1]:%d" % (port, self.port6)
        if redis is not None:
            cfg["redis"] = redis
        if limits is not None:
            cfg["limits"] = limits
        if access is not None:
            cfg["access"] = access
        gate = start_mxgate(self, cfg, name=name)
        if limits:
            # every rate here is per minute: keep a burst inside one fixed window
            align_window(60, redis=redis is not None)
        return gate

    def proxied(self, gate, header, source="127.0.0.1", port=None, host=None):
        """Connects from source, sends header, reads the greeting: (reply, client)."""
        c = smtp_from(self, port or gate.port, source, host=host)
        c.send(header)
        try:
            return c.reply(timeout=10), c
        except Closed as e:
            self.fail("closed without a greeting after header %r: %s" % (header, e))

    def assertClosedSilently(self, c, what, timeout=5.0):
        data, closed = read_until_closed(c, timeout)
        self.assertEqual(data, b"", "%s: expected no bytes, got %r" % (what, data))
        self.assertTrue(closed, "%s: connection still open %.0fs later" % (what, timeout * SCALE))

    def deliver(self, c, subject, helo="client.example.test"):
        self.assertEqual(c.cmd("EHLO " + helo).code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(make_message(subject=subject)))
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 250, r)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def stored_received(self, subject):
        """The Received: header mxgate added to the stored message with this Subject."""
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            for m in self.sink.messages():
                if (b"\r\nSubject: " + subject.encode() + b"\r\n") in m["data"]:
                    return strip_first_received(m["data"])[0]
            time.sleep(0.05)
        self.fail("no stored message with Subject %r" % subject)

    def assertClientShown(self, gate, subject, ip):
        """Received: header and mxgate's log name ip as the client."""
        received = self.stored_received(subject)
        want = ("[IPv6:%s]" % ip if ":" in ip else "[%s]" % ip).encode()
        self.assertIn(want, received, "Received: header does not show %s: %r" % (ip, received))
        deadline = time.monotonic() + 3 * SCALE
        while ip.encode() not in gate.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn(ip.encode(), gate.log(), "mxgate's log does not show %s" % ip)


class ProxyHeaders(ProxyBase):
    def test_v1_honoured(self):
        gate = self.gate("v1")
        g, c = self.proxied(gate, proxy_v1("192.0.2.10"))
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v1 ipv4")
        self.assertClientShown(gate, "v1 ipv4", "192.0.2.10")
        received = self.stored_received("v1 ipv4")
        self.assertNotIn(b"[127.0.0.1]", received, received)

    def test_v1_tcp6_honoured(self):
        gate = self.gate("v1")
        g, c = self.proxied(gate, proxy_v1("2001:db8::10"))
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v1 ipv6")
        self.assertClientShown(gate, "v1 ipv6", "2001:db8::10")

    def test_v2_honoured(self):
        gate = self.gate("v2")
        g, c = self.proxied(gate, proxy_v2("192.0.2.10"))
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v2 ipv4")
        self.assertClientShown(gate, "v2 ipv4", "192.0.2.10")

    def test_v2_tcp6_honoured(self):
        gate = self.gate("v2")
        g, c = self.proxied(gate, proxy_v2("2001:db8::10"))
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v2 ipv6")
        self.assertClientShown(gate, "v2 ipv6", "2001:db8::10")

    def test_v2_with_tlvs(self):
        gate = self.gate("v2")
        # PP2_TYPE_AUTHORITY "mx.example.test", PP2_TYPE_NOOP of 3 octets
        tlvs = b"\x02\x00\x0fmx.example.test" + b"\x04\x00\x03abc"
        g, c = self.proxied(gate, proxy_v2("192.0.2.20", tlvs=tlvs))
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v2 tlvs")
        self.assertClientShown(gate, "v2 tlvs", "192.0.2.20")

    def test_v2_local_keeps_peer(self):
        gate = self.gate("v2")
        g, c = self.proxied(gate, proxy_v2("192.0.2.30", command=0))
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v2 local")
        received = self.stored_received("v2 local")
        self.assertIn(b"[127.0.0.1]", received, received)
        self.assertNotIn(b"192.0.2.30", received, received)

    def test_v1_unknown_keeps_peer(self):
        gate = self.gate("v1")
        g, c = self.proxied(gate, b"PROXY UNKNOWN\r\n")
        self.assertEqual(g.code, 220, g)
        self.deliver(c, "v1 unknown")
        self.assertIn(b"[127.0.0.1]", self.stored_received("v1 unknown"))

    def test_header_in_pieces(self):
        for mode, header in (("v1", proxy_v1("192.0.2.40")), ("v2", proxy_v2("192.0.2.41"))):
            with self.subTest(mode=mode):
                gate = self.gate(mode, name="mxgate-" + mode)
                c = smtp_from(self, gate.port, "127.0.0.1")
                for i in range(0, len(header), 7):
                    c.send(header[i:i + 7])
                    time.sleep(0.03)
                g = c.reply(timeout=10)
                self.assertEqual(g.code, 220, g)
                subject = "pieces " + mode
                self.deliver(c, subject)
                ip = "192.0.2.40" if mode == "v1" else "192.0.2.41"
                self.assertClientShown(gate, subject, ip)

    def test_untrusted_peer_refused(self):
        for mode, header in (("v1", proxy_v1("192.0.2.10")), ("v2", proxy_v2("192.0.2.10"))):
            with self.subTest(mode=mode):
                gate = self.gate(mode, trusted="127.0.0.2/32", name="mxgate-" + mode)
                c = smtp_from(self, gate.port, "127.0.0.1")
                c.send(header)
                self.assertClosedSilently(c, "%s header from untrusted 127.0.0.1" % mode)
                c2 = smtp_from(self, gate.port, "127.0.0.1")
                self.assertClosedSilently(c2, "%s listener, untrusted peer sending nothing" % mode)
                # the trusted peer is honoured
                g, c3 = self.proxied(gate, header, source="127.0.0.2")
                self.assertEqual(g.code, 220, g)
                c3.cmd("QUIT")
                self.assertIn(b"proxy_trusted", gate.log())

    def test_malformed_v1_closed(self):
        gate = self.gate("v1")
        bad = [
            b"PROXY TCP4 999.0.2.10 127.0.0.1 5555 25\r\n",
            b"PROXY TCP4 192.0.2.10  127.0.0.1 5555 25\r\n",
            b"PROXY TCP4 192.0.2.10 127.0.0.1 5555\r\n",
            b"PROXY TCP4 192.0.2.10 127.0.0.1 5555 25 7\r\n",
            b"PROXY TCP4 192.0.2.10 127.0.0.1 70000 25\r\n",
            b"PROXY TCP6 192.0.2.10 127.0.0.1 5555 25\r\n",
            b"PROXY TCP4 2001:db8::1 127.0.0.1 5555 25\r\n",
            b"PROXY UDP4 192.0.2.10 127.0.0.1 5555 25\r\n",
            b"proxy TCP4 192.0.2.10 127.0.0.1 5555 25\r\n",
            b"PROXY TCP4 192.0.2.10 127.0.0.1 5555 25\n",
            b"PROXY TCP4 192.0.2.10 127.0.0.1 5555 25\r\r\n",
            b"PROXY " + b"A" * 120 + b"\r\n",
            b"EHLO client.example.test\r\n",
            b"\r\n",
        ]
        for header in bad:
            with self.subTest(header=header):
                c = smtp_from(self, gate.port, "127.0.0.1")
                c.send(header)
                self.assertClosedSilently(c, "v1 listener given %r" % header)
        # still serving
        g, c = self.proxied(gate, proxy_v1("192.0.2.10"))
        self.assertEqual(g.code, 220, g)

    def test_malformed_v2_closed(self):
        gate = self.gate("v2")
        good = proxy_v2("192.0.2.10")
        bad = [
            good[:12] + b"\x11" + good[13:],                 # version 1 nibble
            good[:12] + b"\x22" + good[13:],                 # command 2
            good[:13] + b"\x11" + b"\x00\x04" + good[16:20],  # TCP4 with a 4-octet body
            good[:13] + b"\x21" + good[14:],                 # TCP6 family, TCP4-sized body
            b"\r\n\r\n\x00\r\nQUIX\n" + good[12:],            # bad signature
            b"EHLO client.example.test\r\n",
            proxy_v1("192.0.2.10"),                          # v1 on a v2-only listener
        ]
        for header in bad:
            with self.subTest(header=header):
                c = smtp_from(self, gate.port, "127.0.0.1")
                c.send(header)
                self.assertClosedSilently(c, "v2 listener given %r" % header)
        g, c = self.proxied(gate, good)
        self.assertEqual(g.code, 220, g)

    def test_v1_listener_given_v2_closed(self):
        gate = self.gate("v1")
        c = smtp_from(self, gate.port, "127.0.0.1")
        c.send(proxy_v2("192.0.2.10"))
        self.assertClosedSilently(c, "v1 listener given a v2 header")

    def test_no_header_deadline(self):
        gate = self.gate("v1", server={"timeout_command": "2s"})
        t0 = time.monotonic()
        c = smtp_from(self, gate.port, "127.0.0.1")
        self.assertClosedSilently(c, "trusted peer that sends no header", timeout=8)
        self.assertGreater(time.monotonic() - t0, 1.0, "closed before the header deadline")

    def test_auto(self):
        gate = self.gate("auto")
        # no header: greeted after a short wait
        t0 = time.monotonic()
        c = smtp_from(self, gate.port, "127.0.0.1")
        g = c.reply(timeout=10)
        waited = time.monotonic() - t0
        self.assertEqual(g.code, 220, g)
        self.assertGreater(waited, 0.15, "auto listener greeted before waiting for a header")
        self.assertLess(waited, 3 * SCALE)
        self.deliver(c, "auto direct")
        self.assertIn(b"[127.0.0.1]", self.stored_received("auto direct"))
        # v1 and v2 headers honoured
        for subject, header, ip in (("auto v1", proxy_v1("192.0.2.50"), "192.0.2.50"),
                                    ("auto v2", proxy_v2("192.0.2.51"), "192.0.2.51"),
                                    ("auto v2 six", proxy_v2("2001:db8::51"), "2001:db8::51")):
            g, c = self.proxied(gate, header)
            self.assertEqual(g.code, 220, g)
            self.deliver(c, subject)
            self.assertClientShown(gate, subject, ip)

    def test_auto_untrusted_peer_not_honoured(self):
        gate = self.gate("auto", trusted="127.0.0.2/32")
        t0 = time.monotonic()
        c = smtp_from(self, gate.port, "127.0.0.1")
        g = c.reply(timeout=10)
        self.assertEqual(g.code, 220, g)
        self.assertLess(time.monotonic() - t0, 2 * SCALE)
        r = None
        try:
            r = c.cmd(proxy_v1("192.0.2.60").rstrip(b"\r\n"))
        except Closed:
            pass
        if r is not None:
            self.assertGreaterEqual(r.code, 500, "a PROXY line from an untrusted peer: %r" % r.raw)
            self.deliver(c, "auto untrusted")
            received = self.stored_received("auto untrusted")
            self.assertIn(b"[127.0.0.1]", received)
            self.assertNotIn(b"192.0.2.60", received)
        self.assertNotIn(b"client=192.0.2.60", gate.log())


class ProxyLimits(ProxyBase):
    def limited(self, gate, header, source="127.0.0.1", port=None, host=None):
        g, c = self.proxied(gate, header, source, port, host)
        if g.code == 220:
            c.cmd("QUIT")
            return 220
        self.assertEqual(g.code, 421, g)
        self.assertEqual(enhanced(g), "4.7.0", g)
        self.assertTrue(c.expect_closed(5))
        return 421

    def check_ipv4(self, gate, make):
        codes = [self.limited(gate, make("192.0.2.10")) for _ in range(3)]
        self.assertEqual(codes, [220, 220, 421], "three from 192.0.2.10 against 2/1m")
        self.assertEqual(self.limited(gate, make("192.0.2.11")), 220, "192.0.2.11 counted apart")
        self.assertIn(b"192.0.2.10", gate.log())

    def test_limits_count_v1_address(self):
        gate = self.gate("v1", limits={"connection_rate": "2/1m"})
        self.check_ipv4(gate, proxy_v1)

    def test_limits_count_v2_address(self):
        gate = self.gate("v2", limits={"connection_rate": "2/1m"})
        self.check_ipv4(gate, proxy_v2)

    def test_limits_count_header_address_with_redis(self):
        redis = start_redis(self)
        gate = self.gate("auto", limits={"connection_rate": "2/1m"}, redis=redis_section(redis))
        self.check_ipv4(gate, proxy_v2)

    def check_ipv6_prefix(self, gate, make):
        codes = [self.limited(gate, make("2001:db8:1:2::1")),
                 self.limited(gate, make("2001:db8:1:2::2"))]
        self.assertEqual(codes, [220, 220])
        self.assertEqual(self.limited(gate, make("2001:db8:1:2:ffff::3")), 421,
                         "a third address in 2001:db8:1:2::/64 against 2/1m")
        self.assertEqual(self.limited(gate, make("2001:db8:1:3::1")), 220,
                         "2001:db8:1:3::1 is another /64")
        self.assertEqual(self.limited(gate, make("2001:db8:1:3::2")), 220)
        self.assertEqual(self.limited(gate, make("2001:db8:1:3::3")), 421)

    def test_ipv6_prefix_v1(self):
        gate = self.gate("v1", limits={"connection_rate": "2/1m", "ipv6_prefix": 64})
        self.check_ipv6_prefix(gate, proxy_v1)

    def test_ipv6_prefix_v2_default_64(self):
        gate = self.gate("v2", limits={"connection_rate": "2/1m"})
        self.check_ipv6_prefix(gate, proxy_v2)

    def test_ipv6_prefix_v2_redis(self):
        redis = start_redis(self)
        gate = self.gate("v2", limits={"connection_rate": "2/1m", "ipv6_prefix": 64},
                         redis=redis_section(redis))
        self.check_ipv6_prefix(gate, proxy_v2)

    def test_ipv6_prefix_128(self):
        gate = self.gate("v2", limits={"connection_rate": "2/1m", "ipv6_prefix": 128})
        for a in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2::3"):
            self.assertEqual(self.limited(gate, proxy_v2(a)), 220, a)
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:1:2::1")), 220)
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:1:2::1")), 421)

    def test_ipv6_prefix_48(self):
        gate = self.gate("v2", limits={"connection_rate": "2/1m", "ipv6_prefix": 48})
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:1:2::1")), 220)
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:1:3::1")), 220)
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:1:ffff::1")), 421, "same /48")
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:2::1")), 220, "another /48")

    def test_proxy_over_ipv6_peer(self):
        """A trusted peer on ::1 sends headers; the /64 of the header counts."""
        gate = self.gate("v2", limits={"connection_rate": "1/1m"}, ipv6=True)
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:5::1", dst="2001:db8::25"),
                                      source="::1", port=self.port6), 220)
        self.assertEqual(self.limited(gate, proxy_v2("2001:db8:5::2", dst="2001:db8::25"),
                                      source="::1", port=self.port6), 421)
        self.assertEqual(self.limited(gate, proxy_v2("192.0.2.99"), source="::1", port=self.port6), 220)

    def test_access_lists_use_header_address(self):
        gate = self.gate("v1", access={"deny": "192.0.2.0/24, 2001:db8:bad::/48",
                                       "allow": "198.51.100.7/32"},
                         limits={"connection_rate": "1/1m"}, server={"max_errors": 50})
        g, c = self.proxied(gate, proxy_v1("192.0.2.10"))
        self.assertEqual(g.code, 554, g)
        self.assertEqual(enhanced(g), "5.7.1", g)
        r = c.cmd("MAIL FROM:<a@example.test>")
        self.assertEqual(r.code, 503, r)
        self.assertEqual(c.cmd("QUIT").code, 221)
        g, c = self.proxied(gate, proxy_v1("2001:db8:bad:1::5"))
        self.assertEqual(g.code, 554, g)
        c.cmd("QUIT")
        # allowed by the header's address: no limits
        for _ in range(3):
            self.assertEqual(self.limited(gate, proxy_v1("198.51.100.7")), 220)
        self.assertEqual(self.limited(gate, proxy_v1("198.51.100.8")), 220)
        self.assertEqual(self.limited(gate, proxy_v1("198.51.100.8")), 421)


class RealHaproxy(ProxyBase):
    def check(self, send_proxy, mode):
        gate = self.gate(mode, limits={"connection_rate": "2/1m"})
        fport = free_port()
        fport6 = free_port(socket.AF_INET6)
        start_haproxy(self, fport, gate.port, send_proxy=send_proxy, frontend_port6=fport6)
        subject = "through haproxy %s" % send_proxy
        # haproxy's own client: 127.0.0.2 (mxgate's peer is haproxy on 127.0.0.1)
        c = smtp_from(self, fport, "127.0.0.2")
        g = c.reply(timeout=10)
        self.assertEqual(g.code, 220, g)
        self.deliver(c, subject)
        self.assertClientShown(gate, subject, "127.0.0.2")
        self.assertNotIn(b"[127.0.0.1]", self.stored_received(subject))
        # limits count haproxy's client, not haproxy
        c = smtp_from(self, fport, "127.0.0.2")
        self.assertEqual(c.reply(timeout=10).code, 220)
        c.cmd("QUIT")
        c = smtp_from(self, fport, "127.0.0.2")
        g = c.reply(timeout=10)
        self.assertEqual(g.code, 421, "third connection from 127.0.0.2 through haproxy: %r" % g.raw)
        self.assertIn(b"127.0.0.2", g.raw)
        c = smtp_from(self, fport, "127.0.0.3")
        self.assertEqual(c.reply(timeout=10).code, 220, "127.0.0.3 through haproxy")
        c.cmd("QUIT")
        # IPv6 client of haproxy
        subject6 = subject + " over ::1"
        c = smtp_from(self, fport6, "::1")
        g = c.reply(timeout=10)
        self.assertEqual(g.code, 220, g)
        self.deliver(c, subject6)
        self.assertClientShown(gate, subject6, "::1")

    def test_haproxy_send_proxy(self):
        self.check("send-proxy", "v1")

    def test_haproxy_send_proxy_v2(self):
        self.check("send-proxy-v2", "v2")

    def test_haproxy_send_proxy_v2_auto_listener(self):
        self.check("send-proxy-v2", "auto")


if __name__ == "__main__":
    unittest.main()
