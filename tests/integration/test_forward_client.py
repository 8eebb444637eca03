"""
[backend] forward_client = xforward | xclient: the backend learns the real
client (ADDR, HELO, PROTO; the PROXY header's source when one was used).
Against mxsink, which writes the XFORWARD / XCLIENT attributes it got in
the .env sidecar of each stored message, and against a real Postfix smtpd
(a private instance under the test's temp folder, on a free port), whose
maillog shows "orig_client=...[ADDR]" (XFORWARD) or "client=...[ADDR]"
(XCLIENT) for the queue id mxgate relayed in its 250 reply.
"""

import re
import socket
import time
import unittest

from harness import (MxTestCase, SCALE, dot_stuff, free_port, gate_config, make_message,
                     postfix_skip_reason, proxy_v1, proxy_v2, smtp_from, start_mxgate,
                     start_mxsink, start_postfix_smtpd)


def attrs_of(env, verb):
    """[{ATTR: value}, ...] for each "VERB ATTR=value ..." line of a .env sidecar."""
    out = []
    for line in env.decode("utf-8", "replace").splitlines():
        if line.startswith(verb + " "):
            d = {}
            for tok in line[len(verb) + 1:].split(" "):
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    if k.upper() in d:
                        d.setdefault("_dup", []).append(k.upper())
                    d[k.upper()] = v
            out.append(d)
    return out


class ForwardBase(MxTestCase):
    def gate(self, backend, forward, proxy=None, ipv6=False):
        port = free_port()
        lst = {"proxy_protocol": proxy, "proxy_trusted": "127.0.0.0/8, ::1/128"} if proxy else None
        b = {"address": backend, "forward_client": forward}
        cfg = gate_config(port, [b], listener=lst)
        if ipv6:
            self.port6 = free_port(socket.AF_INET6)
            cfg["listener in"]["listen"] = "127.0.0.1:%d, [::1]:%d" % (port, self.port6)
        return start_mxgate(self, cfg)

    def send(self, gate, subject, source="127.0.0.2", header=None, helo="EHLO client.example.test",
             port=None, n=1):
        """One session from source (after header), n messages; returns the final replies."""
        c = smtp_from(self, port or gate.port, source)
        if header:
            c.send(header)
        g = c.reply(timeout=10)
        self.assertEqual(g.code, 220, g)
        r = c.cmd(helo)
        self.assertEqual(r.code, 250, r)
        finals = []
        for i in range(n):
            self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
            self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(dot_stuff(make_message(subject="%s %d" % (subject, i) if n > 1 else subject)))
            r = c.reply(timeout=30)
            self.assertEqual(r.code, 250, r)
            finals.append(r)
        self.assertEqual(c.cmd("QUIT").code, 221)
        return finals


class ForwardToMxsink(ForwardBase):
    def setUp(self):
        super().setUp()
        self.sink = start_mxsink(self)

    def env_for(self, subject):
        deadline = time.monotonic() + 10 * SCALE
        while time.monotonic() < deadline:
            for m in self.sink.messages():
                if (b"\r\nSubject: " + subject.encode() + b"\r\n") in m["data"]:
                    return m["env"]
            time.sleep(0.05)
        self.fail("no stored message with Subject %r" % subject)

    def one_line(self, subject, verb):
        env = self.env_for(subject)
        lines = attrs_of(env, verb)
        self.assertEqual(len(lines), 1, "expected one %s line in the sidecar of %r:\n%s"
                         % (verb, subject, env.decode("utf-8", "replace")))
        a = lines[0]
        self.assertNotIn("_dup", a, "attributes repeated (from another transaction?): %r" % env)
        other = "XCLIENT" if verb == "XFORWARD" else "XFORWARD"
        self.assertEqual(attrs_of(env, other), [], "unexpected %s in %r" % (other, env))
        return a

    def test_xforward_direct_client(self):
        gate = self.gate(self.sink, "xforward")
        self.send(gate, "xf direct", source="127.0.0.2", helo="EHLO helo-a.example.test")
        a = self.one_line("xf direct", "XFORWARD")
        self.assertEqual(a.get("ADDR"), "127.0.0.2", a)
        self.assertEqual(a.get("HELO"), "helo-a.example.test", a)
        self.assertEqual(a.get("PROTO"), "ESMTP", a)

    def test_xforward_helo_proto_smtp(self):
        gate = self.gate(self.sink, "xforward")
        self.send(gate, "xf helo", source="127.0.0.3", helo="HELO old.example.test")
        a = self.one_line("xf helo", "XFORWARD")
        self.assertEqual(a.get("ADDR"), "127.0.0.3", a)
        self.assertEqual(a.get("HELO"), "old.example.test", a)
        self.assertEqual(a.get("PROTO"), "SMTP", a)

    def test_xforward_per_transaction_on_pooled_links(self):
        gate = self.gate(self.sink, "xforward")
        self.send(gate, "xf pool a", source="127.0.0.2", helo="EHLO a.example.test", n=2)
        self.send(gate, "xf pool b", source="127.0.0.3", helo="EHLO b.example.test", n=2)
        self.send(gate, "xf pool c", source="127.0.0.4", helo="EHLO c.example.test")
        for subject, ip, helo in (("xf pool a 0", "127.0.0.2", "a.example.test"),
                                  ("xf pool a 1", "127.0.0.2", "a.example.test"),
                                  ("xf pool b 0", "127.0.0.3", "b.example.test"),
                                  ("xf pool b 1", "127.0.0.3", "b.example.test"),
                                  ("xf pool c", "127.0.0.4", "c.example.test")):
            a = self.one_line(subject, "XFORWARD")
            self.assertEqual((a.get("ADDR"), a.get("HELO")), (ip, helo), (subject, a))
        totals = self.sink.stop_and_totals()
        # XFORWARD keeps links pooled: fewer backend connections than sessions
        if "connections" in totals:
            self.assertLess(totals["connections"], 5, totals)

    def test_xforward_proxy_header_v1(self):
        gate = self.gate(self.sink, "xforward", proxy="v1")
        self.send(gate, "xf proxy v1", source="127.0.0.1", header=proxy_v1("192.0.2.10"))
        a = self.one_line("xf proxy v1", "XFORWARD")
        self.assertEqual(a.get("ADDR"), "192.0.2.10", a)
        self.assertEqual(a.get("HELO"), "client.example.test", a)

    def test_xforward_proxy_header_v2_ipv6(self):
        gate = self.gate(self.sink, "xforward", proxy="v2")
        self.send(gate, "xf proxy v2 six", source="127.0.0.1", header=proxy_v2("2001:db8::10"))
        a = self.one_line("xf proxy v2 six", "XFORWARD")
        self.assertEqual(a.get("ADDR"), "IPv6:2001:db8::10", a)

    def test_xforward_ipv6_client(self):
        gate = self.gate(self.sink, "xforward", ipv6=True)
        self.send(gate, "xf six", source="::1", port=self.port6)
        a = self.one_line("xf six", "XFORWARD")
        self.assertEqual(a.get("ADDR"), "IPv6:::1", a)

    def test_xclient_direct_client(self):
        gate = self.gate(self.sink, "xclient")
        self.send(gate, "xc direct", source="127.0.0.2", helo="EHLO helo-x.example.test")
        a = self.one_line("xc direct", "XCLIENT")
        self.assertEqual(a.get("ADDR"), "127.0.0.2", a)
        self.assertEqual(a.get("HELO"), "helo-x.example.test", a)
        self.assertEqual(a.get("PROTO"), "ESMTP", a)
        self.assertNotIn("LOGIN", a, "LOGIN sent for an unauthenticated client: %r" % a)

    def test_xclient_links_not_shared(self):
        gate = self.gate(self.sink, "xclient")
        self.send(gate, "xc a", source="127.0.0.2", helo="EHLO a.example.test", n=2)
        self.send(gate, "xc b", source="127.0.0.3", helo="EHLO b.example.test")
        for subject, ip in (("xc a 0", "127.0.0.2"), ("xc a 1", "127.0.0.2"), ("xc b", "127.0.0.3")):
            a = self.one_line(subject, "XCLIENT")
            self.assertEqual(a.get("ADDR"), ip, (subject, a))

    def test_xclient_proxy_header(self):
        gate = self.gate(self.sink, "xclient", proxy="auto")
        self.send(gate, "xc proxy", source="127.0.0.1", header=proxy_v2("192.0.2.11"))
        a = self.one_line("xc proxy", "XCLIENT")
        self.assertEqual(a.get("ADDR"), "192.0.2.11", a)

    def test_none_sends_nothing(self):
        gate = self.gate(self.sink, "none")
        self.send(gate, "fc none", source="127.0.0.2")
        env = self.env_for("fc none")
        self.assertEqual(attrs_of(env, "XFORWARD") + attrs_of(env, "XCLIENT"), [], env)


class ForwardToPostfix(ForwardBase):
    def setUp(self):
        super().setUp()
        why = postfix_skip_reason()
        if why:
            self.skipTest(why)
        self.pf = start_postfix_smtpd(self)

    def queue_id(self, reply):
        m = re.search(rb"queued as ([0-9A-Za-z]+)", reply.raw)
        self.assertTrue(m, "the 250 does not carry Postfix's queue id: %r" % reply.raw)
        return m.group(1).decode()

    def maillog_line(self, qid, pattern):
        """The maillog line "QID: client=..." once it matches pattern (bounded wait)."""
        deadline = time.monotonic() + 10 * SCALE
        line = None
        while time.monotonic() < deadline:
            for l in self.pf.log().decode("utf-8", "replace").splitlines():
                if (" %s: client=" % qid) in l:
                    line = l
                    if re.search(pattern, l):
                        return l
            time.sleep(0.1)
        self.fail("no maillog line for %s matching %r; the line: %r; maillog:\n%s"
                  % (qid, pattern, line, self.pf.log().decode("utf-8", "replace")[-3000:]))

    def test_postfix_xforward_proxy_header(self):
        gate = self.gate(self.pf.port, "xforward", proxy="v1")
        r = self.send(gate, "pf xf", source="127.0.0.1", header=proxy_v1("192.0.2.10"))[0]
        qid = self.queue_id(r)
        line = self.maillog_line(qid, r"orig_client=\S*\[192\.0\.2\.10\]")
        self.assertIn("client=", line)

    def test_postfix_xforward_direct(self):
        gate = self.gate(self.pf.port, "xforward")
        rs = self.send(gate, "pf xf direct", source="127.0.0.2", n=2)
        for r in rs:
            self.maillog_line(self.queue_id(r), r"orig_client=\S*\[127\.0\.0\.2\]")

    def test_postfix_xclient_proxy_header(self):
        gate = self.gate(self.pf.port, "xclient", proxy="v2")
        r = self.send(gate, "pf xc", source="127.0.0.1", header=proxy_v2("192.0.2.11"))[0]
        qid = self.queue_id(r)
        line = self.maillog_line(qid, r": client=\S*\[192\.0\.2\.11\]")
        self.assertNotIn("[127.0.0.1]", line)

    def test_postfix_xclient_direct(self):
        gate = self.gate(self.pf.port, "xclient")
        rs = self.send(gate, "pf xc direct a", source="127.0.0.2", n=2)
        rs += self.send(gate, "pf xc direct b", source="127.0.0.3")
        ips = ["127\\.0\\.0\\.2", "127\\.0\\.0\\.2", "127\\.0\\.0\\.3"]
        for r, ip in zip(rs, ips):
            self.maillog_line(self.queue_id(r), r": client=\S*\[%s\]" % ip)


if __name__ == "__main__":
    unittest.main()
