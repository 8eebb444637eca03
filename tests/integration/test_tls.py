"""
TLS on the client side (listener tls = starttls | implicit, require_tls,
[tls] and [tls HOSTNAME], SIGHUP reloading certificates) and on the
backend side ([backend] tls = starttls, tls_verify, tls_ca), with real
clients: Python's ssl/smtplib, swaks, curl, openssl s_client, and a real
Postfix smtpd as a TLS backend. Every delivery is compared byte for byte
with what mxsink stored (minus mxgate's Received: header, which must
name the TLS version and cipher).

Certificates: tls_fixtures.certs() (conf/make-test-certs.sh when present,
else openssl), a CA and leaf certificates for localhost, mx.example.test,
127.0.0.1 and other.example.test.
"""

import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time
import unittest

from harness import (enhanced, CRLF, HOSTNAME, SCALE, Closed, MxTestCase, binary, check_config_file, config_line,
                     dot_stuff, free_port, gate_config, make_message, port_open,
                     postfix_skip_reason, proxy_v1, proxy_v2, start_mxgate,
                     start_mxsink, start_postfix_smtpd, strip_first_received, wait_until)
from tls_fixtures import (Interactive, TlsSMTP, bio_handshake, certs, client_context, copy_certs,
                          ehlo_keywords, pem_der, received_tls, received_with, run_tool,
                          tls_log_lines, tls_section, wait_log, wait_tls_lines)

READY = b"220 2.0.0 Ready to start TLS\r\n"
FROM = "a@example.test"
TO = "b@example.test"



def body_for(subject):
    """A message with a leading-dot line, 8-bit text and a long-ish body: transparency under TLS."""
    lines = [b"line %d of %s: " % (i, subject.encode()) + b"x" * (i % 70) for i in range(300)]
    body = b"\r\n".join(lines[:150]) + b"\r\n.leading dot\r\n..two dots\r\n\xc3\xa9t\xc3\xa9\r\n" + \
        b"\r\n".join(lines[150:]) + b"\r\n"
    return make_message(subject=subject, body=body)


class TlsBase(MxTestCase):
    """mxsink --store and an mxgate with three listeners: starttls (port), implicit, none."""

    def start(self, tls=None, listener=None, server=None, extra=None, sink=None, imp_listener=None):
        self.sink = sink or start_mxsink(self)
        self.port, self.imp_port, self.plain_port = free_port(), free_port(), free_port()
        lst = {"tls": "starttls"}
        lst.update(listener or {})
        cfg = gate_config(self.port, [self.sink], server=server, listener=lst)
        imp = {"listen": "127.0.0.1:%d" % self.imp_port, "tls": "implicit", "relay_domains": "example.test"}
        imp.update(imp_listener or {})
        cfg["listener imp"] = imp
        cfg["listener plain"] = {"listen": "127.0.0.1:%d" % self.plain_port, "relay_domains": "example.test"}
        cfg["tls"] = tls_section(**(tls or {}))
        for k, v in (extra or {}).items():
            cfg[k] = v
        self.gate = start_mxgate(self, cfg)
        for p in (self.imp_port, self.plain_port):
            wait_until(lambda: port_open(p), 10, what="listener on %d" % p)
        return self.gate

    # -- sessions

    def starttls_session(self, ctx=None, sni="mx.example.test", session=None, port=None, ehlo=True):
        """Greeting, EHLO, STARTTLS, handshake, and (ehlo) EHLO again; returns the TlsSMTP."""
        c = TlsSMTP(port or self.port, test=self)
        g = c.greeting()
        self.assertEqual(g.code, 220, g)
        r = c.ehlo()
        self.assertEqual(r.code, 250, r)
        self.assertIn("STARTTLS", ehlo_keywords(r), r)
        r = c.cmd("STARTTLS")
        self.assertEqual(r.raw, READY)
        c.handshake(ctx or client_context(), sni, session)
        if ehlo:
            r = c.ehlo()
            self.assertEqual(r.code, 250, r)
        return c

    def implicit_session(self, ctx=None, sni="mx.example.test", session=None, port=None, ehlo=True):
        c = TlsSMTP(port or self.imp_port, test=self)
        c.handshake(ctx or client_context(), sni, session)
        g = c.greeting()
        self.assertEqual(g.code, 220, g)
        self.assertTrue(g.raw.startswith(("220 %s ESMTP mxgate" % HOSTNAME).encode()), g)
        if ehlo:
            r = c.ehlo()
            self.assertEqual(r.code, 250, r)
        return c

    def clear_session(self, port=None):
        """A session on a STARTTLS (or tls = none) listener, greeted and EHLO'd in clear."""
        c = TlsSMTP(port or self.port, test=self)
        g = c.greeting()
        self.assertEqual(g.code, 220, g)
        r = c.ehlo()
        self.assertEqual(r.code, 250, r)
        return c

    def transaction(self, c, subject, rcpt=TO):
        msg = body_for(subject)
        r = self.send_message(c, FROM, [rcpt], dot_stuff(msg))
        return msg, r

    # -- stored messages

    def stored(self, subject, timeout=10.0):
        """The one stored message whose Subject is subject (bounded wait)."""
        needle = b"\r\nSubject: " + subject.encode() + b"\r\n"
        deadline = time.monotonic() + timeout * SCALE
        while True:
            found = [m for m in self.sink.messages() if needle in m["data"]]
            if found:
                self.assertEqual(len(found), 1, "Subject %r stored %d times" % (subject, len(found)))
                return found[0]
            if time.monotonic() >= deadline:
                self.fail("no stored message with Subject %r; stored: %s"
                          % (subject, [m["path"] for m in self.sink.messages()]))
            time.sleep(0.05)

    def assert_tls_delivery(self, subject, sent, version=None, proto="ESMTPS"):
        """subject stored byte-exact; its Received: names TLS (version) and proto; returns (version, cipher)."""
        m = self.stored(subject)
        self.assertDeliveredExact(m, sent, mail_from=FROM)
        received, _ = strip_first_received(m["data"])
        got = received_tls(received)
        self.assertIsNotNone(got, "Received: lacks '(using VERSION with cipher NAME)': %r" % received)
        if version:
            self.assertEqual(got[0], version, received)
        self.assertEqual(received_with(received), proto, received)
        return got


# ====================================================================== STARTTLS dialog

class StartTlsDialog(TlsBase):
    def setUp(self):
        super().setUp()
        self.start()

    def test_ehlo_offers_starttls_before_tls_only(self):
        c = TlsSMTP(self.port, test=self)
        c.greeting()
        kw = ehlo_keywords(c.ehlo())
        self.assertEqual(kw.get("STARTTLS"), b"STARTTLS")
        self.assertNotIn("AUTH", kw, "AUTH offered without [auth]")
        self.assertEqual(c.cmd("STARTTLS").raw, READY)
        c.handshake(client_context())
        kw = ehlo_keywords(c.ehlo())
        self.assertNotIn("STARTTLS", kw, "STARTTLS offered again under TLS")
        self.assertNotIn("AUTH", kw, "AUTH offered without [auth]")
        for k in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES"):
            self.assertIn(k, kw)
        # a tls = none listener never offers it; an implicit one has no use for it
        p = TlsSMTP(self.plain_port, test=self)
        p.greeting()
        self.assertNotIn("STARTTLS", ehlo_keywords(p.ehlo()))
        i = self.implicit_session(ehlo=False)
        self.assertNotIn("STARTTLS", ehlo_keywords(i.ehlo()))

    def test_starttls_replies(self):
        c = self.clear_session()
        r = c.cmd("STARTTLS now")
        self.assertEqual(r.code, 501, r)
        r = c.cmd("STARTTLS")
        self.assertEqual(r.raw, READY)
        c.handshake(client_context())
        # RFC 3207 4.2: the client must EHLO again
        r = c.cmd("MAIL FROM:<%s>" % FROM)
        self.assertEqual(r.code, 503, r)
        self.assertEqual(c.ehlo().code, 250)
        r = c.cmd("STARTTLS")
        self.assertEqual(r.code, 554, r)
        self.assertEqual(enhanced(r), "5.5.1", r)
        # the session goes on, under TLS
        msg, _ = self.transaction(c, "after starttls errors")
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assert_tls_delivery("after starttls errors", msg)

    def test_starttls_on_tls_none_listener(self):
        c = self.clear_session(self.plain_port)
        r = c.cmd("STARTTLS")
        self.assertEqual(r.code, 502, r)
        self.assertEqual(enhanced(r), "5.5.1", r)
        self.assertEqual(c.cmd("NOOP").code, 250, "the session goes on in clear")

    def test_starttls_forgets_the_clear_session(self):
        c = self.clear_session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % TO).code, 250)
        self.assertEqual(c.cmd("STARTTLS").raw, READY)
        c.handshake(client_context())
        self.assertEqual(c.ehlo().code, 250)
        # the transaction begun in clear is gone
        r = c.cmd("DATA")
        self.assertEqual(r.code, 503, r)
        r = c.cmd("RCPT TO:<%s>" % TO)
        self.assertEqual(r.code, 503, r)
        self.sink.assert_stored(self, 0, settle=0.2)

    def test_injection_probe_not_answered(self):
        """CVE-2011-0411: plaintext after STARTTLS in the same write never runs."""
        c = self.clear_session()
        c.send(b"STARTTLS\r\nRSET\r\n")
        r = c.reply()
        self.assertEqual(r.raw, READY)
        # nothing else in clear (TlsSMTP.handshake refuses buffered bytes)
        c.handshake(client_context())
        c.send(b"HELP\r\n")
        r = c.reply()
        self.assertEqual(r.code, 214, "first reply under TLS is not HELP's: %r (RSET answered?)" % r)
        self.assertEqual(c.pending(0.3), b"", "extra replies under TLS")
        wait_log(self.gate, rb"discarded 6 bytes sent after STARTTLS")
        # a MAIL smuggled the same way is not run either
        c2 = self.clear_session()
        c2.send(b"STARTTLS\r\nMAIL FROM:<evil@example.test>\r\n")
        self.assertEqual(c2.reply().raw, READY)
        c2.handshake(client_context())
        self.assertEqual(c2.ehlo().code, 250)
        r = c2.cmd("RCPT TO:<%s>" % TO)
        self.assertEqual(r.code, 503, "the injected MAIL ran: %r" % r)
        self.assertEqual(c2.pending(0.2), b"")

    def test_smtplib_starttls(self):
        msg = body_for("smtplib starttls")
        with smtplib.SMTP("127.0.0.1", self.port, local_hostname="py.example.test",
                          timeout=10 * SCALE) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("starttls"))
            code, _ = s.starttls(context=client_context())
            self.assertEqual(code, 220)
            self.assertEqual(s.sock.version(), "TLSv1.3")
            s.ehlo()
            self.assertFalse(s.has_extn("starttls"))
            refused = s.sendmail(FROM, [TO], msg)
            self.assertEqual(refused, {})
        version, cipher = self.assert_tls_delivery("smtplib starttls", msg, version="TLSv1.3")
        # the log line and the header name the same cipher
        logged = wait_tls_lines(self.gate, count=1)
        self.assertEqual(logged[-1][1], cipher)
        self.assertEqual(logged[-1][2], "no")
        self.assertEqual(logged[-1][3], "-", "smtplib sends no SNI for an IP address")

    def test_smtplib_smtp_ssl_implicit(self):
        # the greeting waits for the handshake: a plaintext client hears nothing
        raw = TlsSMTP(self.imp_port, test=self)
        self.assertEqual(raw.pending(0.5), b"", "implicit TLS listener spoke in clear")
        raw.close()
        msg = body_for("smtplib implicit")
        with smtplib.SMTP_SSL("127.0.0.1", self.imp_port, local_hostname="py.example.test",
                              context=client_context(), timeout=10 * SCALE) as s:
            # smtplib verifies against the host it connects to: 127.0.0.1 is in the SAN
            s.ehlo()
            self.assertFalse(s.has_extn("starttls"))
            self.assertEqual(s.sendmail(FROM, [TO], msg), {})
        self.assert_tls_delivery("smtplib implicit", msg, version="TLSv1.3")

    def test_tls12_and_tls13(self):
        for version, tv in (("TLSv1.2", ssl.TLSVersion.TLSv1_2), ("TLSv1.3", ssl.TLSVersion.TLSv1_3)):
            with self.subTest(version=version):
                ctx = client_context(minimum=tv, maximum=tv)
                c = self.starttls_session(ctx)
                self.assertEqual(c.sock.version(), version)
                msg, _ = self.transaction(c, "version %s" % version)
                self.assertEqual(c.sock.cipher()[1], version)
                c.cmd("QUIT")
                c.close()
                _, cipher = self.assert_tls_delivery("version %s" % version, msg, version=version)
                logged = [l for l in wait_tls_lines(self.gate, lambda ls: any(l[0] == version for l in ls))
                          if l[0] == version]
                self.assertEqual(len(logged), 1, tls_log_lines(self.gate))
                self.assertEqual(logged[0][1], cipher)
        # implicit TLS too
        c = self.implicit_session(client_context(maximum=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(c.sock.version(), "TLSv1.2")
        msg, _ = self.transaction(c, "implicit 1.2")
        self.assert_tls_delivery("implicit 1.2", msg, version="TLSv1.2")

    def resume(self, tv, opener):
        ctx = client_context(minimum=tv, maximum=tv)
        first = opener(ctx)
        # read something under TLS so the TLS 1.3 NewSessionTicket has arrived
        self.assertEqual(first.cmd("NOOP").code, 250)
        sess = first.sock.session
        self.assertIsNotNone(sess)
        self.assertFalse(first.sock.session_reused)
        first.cmd("QUIT")
        first.close()
        second = opener(ctx, session=sess)
        self.assertTrue(second.sock.session_reused, "the server did not resume the session")
        msg, _ = self.transaction(second, "resumed %s %s" % (tv.name, opener.__name__))
        second.cmd("QUIT")
        second.close()
        self.assert_tls_delivery("resumed %s %s" % (tv.name, opener.__name__), msg)
        return first, second

    def test_session_resumption(self):
        for tv in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            for opener in (self.starttls_session, self.implicit_session):
                with self.subTest(version=tv.name, mode=opener.__name__):
                    n = len(tls_log_lines(self.gate))
                    self.resume(tv, opener)
                    lines = wait_tls_lines(self.gate, count=n + 2)[n:]
                    self.assertEqual(sorted(l[2] for l in lines), ["no", "yes"],
                                     "log resumed=... of the two sessions: %r" % lines)
                    self.assertEqual({l[0] for l in lines}, {tv.name.replace("_", ".")}, lines)

    def test_swaks_starttls(self):
        self.swaks(["--tls"], self.port, "swaks starttls")

    def test_swaks_implicit(self):
        self.swaks(["--tlsc"], self.imp_port, "swaks tlsc")

    def swaks(self, mode, port, subject):
        if not shutil.which("swaks"):
            self.skipTest("swaks is not installed")
        # swaks sends the file's lines with CRLF and adds the CRLF before the final dot
        text = ("From: %s\nTo: %s\nSubject: %s\nMessage-ID: <%s@swaks.example.test>\n\n"
                "body line\n.leading dot\n..two\nlast line" % (FROM, TO, subject, os.urandom(6).hex()))
        path = os.path.join(self.tmpdir, "swaks.txt")
        with open(path, "w") as f:
            f.write(text)
        rc, out = run_tool(self, ["swaks", "--server", "127.0.0.1:%d" % port] + mode +
                           ["--tls-verify", "--tls-ca-path", certs()["ca.crt"],
                            "--tls-sni", "mx.example.test", "--helo", "swaks.example.test",
                            "--from", FROM, "--to", TO, "--data", "@" + path,
                            "--timeout", "20"])
        self.assertEqual(rc, 0, out)
        self.assertIn("TLS started", out)
        self.assertRegex(out, r"<~\s+250 2\.0\.0 ")
        sent = (text.replace("\n", "\r\n") + "\r\n").encode()
        self.assert_tls_delivery(subject, sent)

    def curl(self, url_args, subject, tls_args):
        msg = body_for(subject)
        path = os.path.join(self.tmpdir, "curl.eml")
        with open(path, "wb") as f:
            f.write(msg)
        rc, out = run_tool(self, ["curl", "-sS", "--max-time", "20"] + tls_args + url_args +
                           ["--mail-from", FROM, "--mail-rcpt", TO, "--upload-file", path])
        self.assertEqual(rc, 0, out)
        self.assert_tls_delivery(subject, msg)

    def test_curl_ssl_reqd_starttls(self):
        self.curl(["--connect-to", "mx.example.test:%d:127.0.0.1:%d" % (self.port, self.port),
                   "smtp://mx.example.test:%d/curl.example.test" % self.port],
                  "curl ssl-reqd", ["--ssl-reqd", "--cacert", certs()["ca.crt"]])

    def test_curl_smtps(self):
        self.curl(["smtps://127.0.0.1:%d/curl.example.test" % self.imp_port], "curl smtps", ["-k"])
        self.curl(["smtps://127.0.0.1:%d/curl.example.test" % self.imp_port], "curl smtps verified",
                  ["--cacert", certs()["ca.crt"]])

    def test_curl_ssl_reqd_on_tls_none_listener_fails(self):
        rc, out = run_tool(self, ["curl", "-sS", "--max-time", "10", "--ssl-reqd",
                                  "smtp://127.0.0.1:%d" % self.plain_port, "--mail-from", FROM,
                                  "--mail-rcpt", TO, "-T", "/dev/null"])
        self.assertNotEqual(rc, 0, out)
        self.sink.assert_stored(self, 0, settle=0.1)


# ====================================================================== openssl s_client

class SClient(TlsBase):
    def test_openssl_s_client_starttls_with_chain(self):
        """certificate = a chain file: s_client sees both certificates and verifies."""
        self.start(tls={"certificate": certs()["server-chain.crt"]})
        p = Interactive(self, ["openssl", "s_client", "-starttls", "smtp", "-connect",
                               "127.0.0.1:%d" % self.port, "-servername", "mx.example.test",
                               "-CAfile", certs()["ca.crt"], "-verify_return_error",
                               "-verify_hostname", "mx.example.test", "-showcerts", "-ign_eof",
                               "-name", "sclient.example.test"])
        p.expect(r"Verify return code: 0 \(ok\)", timeout=10)
        certs_seen = p.text().count("-----BEGIN CERTIFICATE-----")
        self.assertEqual(certs_seen, 2, "expected leaf + CA from the chain file:\n" + p.text())
        start = len(p.text())
        p.send(b"EHLO sclient.example.test\r\n")
        p.expect(r"^250 ENHANCEDSTATUSCODES", start=start)
        self.assertNotIn("STARTTLS", p.text()[start:])
        msg = body_for("s_client")
        for line, want in ((b"MAIL FROM:<%s>\r\n" % FROM.encode(), r"^250 2\.1\.0"),
                           (b"RCPT TO:<%s>\r\n" % TO.encode(), r"^250 2\.1\.5"),
                           (b"DATA\r\n", r"^354 "),
                           (dot_stuff(msg), r"^250 2\.0\.0 .*queued"),
                           (b"QUIT\r\n", r"^221 ")):
            start = len(p.text())
            p.send(line)
            p.expect(want, start=start)
        self.assertEqual(p.wait(10), 0, p.text())
        self.assert_tls_delivery("s_client", msg)


# ====================================================================== configuration variants

class TlsConfigured(TlsBase):
    def test_protocols_tls13_only(self):
        self.start(tls={"protocols": "TLSv1.3"})
        with self.assertRaises((ssl.SSLError, OSError)):
            self.implicit_session(client_context(maximum=ssl.TLSVersion.TLSv1_2))
        c = self.starttls_session()
        self.assertEqual(c.sock.version(), "TLSv1.3")
        # the refused handshake did not hurt the listener
        c = self.implicit_session()
        msg, _ = self.transaction(c, "tls13 only")
        self.assert_tls_delivery("tls13 only", msg, version="TLSv1.3")

    def test_protocols_tls12_only(self):
        self.start(tls={"protocols": "TLSv1.2"})
        with self.assertRaises((ssl.SSLError, OSError)):
            self.implicit_session(client_context(minimum=ssl.TLSVersion.TLSv1_3))
        c = self.starttls_session()
        self.assertEqual(c.sock.version(), "TLSv1.2")
        msg, _ = self.transaction(c, "tls12 only")
        self.assert_tls_delivery("tls12 only", msg, version="TLSv1.2")

    def test_session_tickets_switch(self):
        """session_tickets = yes: TLS 1.2 sessions carry a ticket (RFC 5077); no: they do not."""
        ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2)
        self.start()
        c = self.implicit_session(ctx)
        self.assertTrue(c.sock.session.has_ticket, "session_tickets = yes (default) but no ticket")
        self.start(tls={"session_tickets": "no"})  # a second mxgate (and mxsink) of its own
        c = self.implicit_session(ctx)
        self.assertFalse(c.sock.session.has_ticket, "session_tickets = no but a ticket was issued")

    def test_sni_picks_certificate(self):
        c = certs()
        self.start(extra={
            "tls other.example.test": {"certificate": c["other.crt"], "key": c["other.key"]},
            "tls *.wild.example.test": {"certificate": c["server-rsa.crt"], "key": c["server-rsa.key"]},
        })
        server, other, rsa = pem_der(c["server.crt"]), pem_der(c["other.crt"]), pem_der(c["server-rsa.crt"])
        noverify = client_context(verify=False)
        cases = [
            ("other.example.test", other), ("OTHER.Example.TEST", other),
            ("mx.example.test", server), (None, server), ("unknown.example.test", server),
            ("a.wild.example.test", rsa), ("b.a.wild.example.test", server), ("wild.example.test", server),
        ]
        for sni, want in cases:
            for opener in (self.starttls_session, self.implicit_session):
                with self.subTest(sni=sni, mode=opener.__name__):
                    s = opener(noverify, sni=sni, ehlo=False)
                    self.assertEqual(s.peer_der(), want, "SNI %r got the wrong certificate" % sni)
                    s.close()
        # verified by name, end to end
        s = self.implicit_session(client_context(), sni="other.example.test")
        msg, _ = self.transaction(s, "sni other")
        self.assert_tls_delivery("sni other", msg)
        s.close()
        snis = [l[3] for l in wait_tls_lines(self.gate, count=len(cases) * 2 + 1)]
        self.assertIn("other.example.test", snis)
        self.assertIn("-", snis, "no SNI is logged as sni=-")
        self.assertIn("a.wild.example.test", snis)

    def test_rsa_certificate(self):
        c = certs()
        self.start(tls={"certificate": c["server-rsa.crt"], "key": c["server-rsa.key"]})
        s = self.starttls_session(client_context(maximum=ssl.TLSVersion.TLSv1_2))
        self.assertEqual(s.peer_der(), pem_der(c["server-rsa.crt"]))
        self.assertIn("RSA", s.sock.cipher()[0])
        msg, _ = self.transaction(s, "rsa")
        self.assert_tls_delivery("rsa", msg, version="TLSv1.2")

    def test_require_tls(self):
        self.start(listener={"require_tls": "yes"}, imp_listener={"require_tls": "yes"})
        c = self.clear_session()
        r = c.cmd("MAIL FROM:<%s>" % FROM)
        self.assertEqual(r.code, 530, r)
        self.assertEqual(enhanced(r), "5.7.0", r)
        r = c.cmd("RCPT TO:<%s>" % TO)
        self.assertEqual(r.code, 503, r)
        self.assertEqual(c.cmd("STARTTLS").raw, READY)
        c.handshake(client_context())
        c.ehlo()
        msg, _ = self.transaction(c, "require_tls")
        self.assert_tls_delivery("require_tls", msg)
        i = self.implicit_session()
        msg, _ = self.transaction(i, "require_tls implicit")
        self.assert_tls_delivery("require_tls implicit", msg)
        # other listeners are not affected
        p = self.clear_session(self.plain_port)
        self.assertEqual(p.cmd("MAIL FROM:<%s>" % FROM).code, 250)


# ====================================================================== the record layer

class TlsTransport(TlsBase):
    """What TLS does to the byte stream: records split anywhere, big messages, many sessions."""

    def test_fragmented_handshake_and_one_byte_records(self):
        self.start()
        c = TlsSMTP(self.imp_port, test=self)
        # the ClientHello in 3-byte TCP writes, 2 ms apart
        bio_handshake(c, chunk=3, delay=0.002)
        self.assertEqual(c.greeting().code, 220)
        tls = c.sock

        def dribble(data, n=1):
            for i in range(0, len(data), n):   # each write is a TLS record of its own
                tls.sendall(data[i:i + n])

        dribble(b"EHLO dribble.example.test\r\n")
        self.assertEqual(c.reply().code, 250)
        dribble(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (FROM.encode(), TO.encode()), 3)
        self.assertEqual([r.code for r in c.replies(3)], [250, 250, 354])
        msg = make_message(subject="dribble", body=b"a\r\n.b\r\n" + b"c" * 998 + b"\r\nend\r\n")
        wire = dot_stuff(msg)
        # the end of data split across records: "\r\n" | "." | "\r\n"
        dribble(wire[:-3], 7)
        tls.sendall(wire[-3:-2])
        tls.sendall(wire[-2:])
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 250, r)
        self.assert_tls_delivery("dribble", msg)
        # a whole pipelined group in one record
        tls.sendall(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<c@example.test>\r\nDATA\r\n"
                    % (FROM.encode(), TO.encode()))
        self.assertEqual([r.code for r in c.replies(4)], [250, 250, 250, 354])
        msg = body_for("one record")
        tls.sendall(dot_stuff(msg) + b"QUIT\r\n")
        self.assertEqual([r.code for r in c.replies(2, timeout=30)], [250, 221])
        self.assert_tls_delivery("one record", msg)

    def test_smuggling_checks_under_tls(self):
        """Bare LF before the dot under TLS: refused, nothing delivered (the checks see plaintext)."""
        self.start()
        c = self.starttls_session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % TO).code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(b"Subject: smuggle\r\n\r\nbody\n.\nMAIL FROM:<evil@example.test>\r\n")
        c.send(b"\r\n.\r\n")
        r = c.reply(timeout=30)
        self.assertEqual(r.code // 100, 5, r)
        self.assertEqual(c.cmd("NOOP").code, 250)
        self.sink.assert_stored(self, 0, settle=0.2)

    def test_large_message(self):
        self.start()
        line = b"".join(bytes([33 + (i * 7) % 90]) for i in range(76))
        body = b"".join(b"%08d " % i + line + b"\r\n" for i in range(48000))   # ~4 MB
        body += b".\r\n..\r\n" + body[:100000] + b"\r\n"
        msg = make_message(subject="large tls", body=body)
        with smtplib.SMTP_SSL("127.0.0.1", self.imp_port, context=client_context(),
                              timeout=60 * SCALE) as s:
            self.assertEqual(s.sendmail(FROM, [TO], msg), {})
        self.assert_tls_delivery("large tls", msg)

    def test_parallel_sessions(self):
        import threading
        self.start(server={"workers": 2})
        errors, n = [], 24

        def one(i):
            try:
                subject = "parallel %d" % i
                msg = body_for(subject) + (b"x" * 997 + b"\r\n") * (i * 3)
                if i % 2:
                    with smtplib.SMTP_SSL("127.0.0.1", self.imp_port, context=client_context(),
                                          timeout=30 * SCALE) as s:
                        s.sendmail(FROM, [TO], msg)
                else:
                    with smtplib.SMTP("127.0.0.1", self.port, timeout=30 * SCALE) as s:
                        s.starttls(context=client_context())
                        s.sendmail(FROM, [TO], msg)
                        s.sendmail(FROM, [TO], msg.replace(b"Subject: parallel", b"Subject: again parallel"))
                sent[i] = msg
            except Exception as e:
                errors.append((i, repr(e)))

        sent = {}
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60 * SCALE)
        self.assertEqual(errors, [])
        self.sink.wait_messages(n + n // 2, timeout=30)
        for i, msg in sent.items():
            self.assert_tls_delivery("parallel %d" % i, msg)

    def test_proxy_header_then_implicit_tls_in_one_write(self):
        self.start(imp_listener={"proxy_protocol": "v1"}, listener={"proxy_protocol": "v2"})
        c = TlsSMTP(self.imp_port, test=self)
        bio_handshake(c, prefix=proxy_v1("192.0.2.7", sport=40001))
        self.assertEqual(c.greeting().code, 220)
        self.assertEqual(c.ehlo().code, 250)
        msg, _ = self.transaction(c, "proxy implicit")
        m = self.assert_tls_delivery("proxy implicit", msg)
        received, _ = strip_first_received(self.stored("proxy implicit")["data"])
        self.assertIn(b"[192.0.2.7]", received)
        c.close()
        wait_log(self.gate, rb"client=192\.0\.2\.7:40001 .*tls=TLSv1\.3 cipher=")
        # PROXY v2 then STARTTLS
        c = TlsSMTP(self.port, test=self)
        c.send(proxy_v2("2001:db8::7"))
        self.assertEqual(c.greeting().code, 220)
        c.ehlo()
        self.assertEqual(c.cmd("STARTTLS").raw, READY)
        c.handshake(client_context())
        c.ehlo()
        msg, _ = self.transaction(c, "proxy starttls")
        self.assert_tls_delivery("proxy starttls", msg)
        received, _ = strip_first_received(self.stored("proxy starttls")["data"])
        self.assertIn(b"[IPv6:2001:db8::7]", received)

    def test_pipelined_ehlo_starttls(self):
        self.start()
        c = TlsSMTP(self.port, test=self)
        c.greeting()
        c.send(b"EHLO pipe.example.test\r\nSTARTTLS\r\n")
        r = c.reply()
        self.assertEqual(r.code, 250)
        self.assertIn("STARTTLS", ehlo_keywords(r))
        self.assertEqual(c.reply().raw, READY)
        c.handshake(client_context())
        self.assertEqual(c.ehlo().code, 250)
        msg, _ = self.transaction(c, "pipelined starttls")
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assertTrue(c.expect_closed(3))
        self.assert_tls_delivery("pipelined starttls", msg)

    def test_sigterm_lets_a_tls_transaction_finish(self):
        import signal
        self.start()
        # a client that ends TLS with close_notify (no QUIT): mxgate closes too
        bye = self.implicit_session()
        bye.sock.unwrap()
        bye.sock = bye.plain
        self.assertTrue(bye.expect_closed(3), "close_notify not followed by a close")
        c = self.starttls_session()
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % TO).code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        self.gate.proc.signal(signal.SIGTERM)
        wait_until(lambda: not port_open(self.imp_port), 5, what="listeners closed after SIGTERM")
        msg = body_for("sigterm drain")
        c.send(dot_stuff(msg))
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 250, r)
        r = c.cmd("QUIT")
        self.assertEqual(r.code, 221, r)
        self.assertEqual(self.gate.proc.wait(15), 0)
        self.assert_tls_delivery("sigterm drain", msg)

    def test_timeout_and_errors_under_tls(self):
        """421s under TLS go out encrypted, then the connection closes."""
        self.start(server={"timeout_command": "1s", "max_errors": 2})
        c = self.implicit_session()
        time.sleep(1.3)
        r = c.reply(timeout=5)
        self.assertEqual(r.code, 421, r)
        self.assertTrue(c.expect_closed(3))
        c = self.starttls_session()
        for _ in range(2):
            self.assertEqual(c.cmd("BOGUS").code // 100, 5)
        r = c.cmd("BOGUS")
        self.assertEqual(r.code, 421, r)
        self.assertTrue(c.expect_closed(3))


# ====================================================================== broken handshakes

PARTIAL_CLIENT_HELLO = (b"\x16\x03\x01\x02\x00"          # handshake record of 512 bytes
                        b"\x01\x00\x01\xfc\x03\x03" + b"\x11" * 20)  # ... of which 26 come


def closed_now(c):
    """True when the peer of c has closed (reads what is there without waiting)."""
    try:
        c.sock.setblocking(False)
        try:
            while True:
                chunk = c.sock.recv(65536)
                if not chunk:
                    return True
                c.buf += chunk
        finally:
            c.sock.setblocking(True)
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    except OSError:
        return True


class BrokenHandshakes(TlsBase):
    def active_session_works(self, c, subject):
        self.assertEqual(c.cmd("NOOP").code, 250)
        msg, _ = self.transaction(c, subject)
        self.assert_tls_delivery(subject, msg)

    def test_stalled_handshakes_are_dropped(self):
        """Stalled longer than min(timeout_command, 30s): dropped; other sessions carry on."""
        self.start(server={"timeout_command": "2s"})
        t0 = time.monotonic()
        imp = TlsSMTP(self.imp_port, test=self)
        imp.send(PARTIAL_CLIENT_HELLO)
        st = self.clear_session()
        self.assertEqual(st.cmd("STARTTLS").raw, READY)
        st.send(PARTIAL_CLIENT_HELLO[:9])
        silent = TlsSMTP(self.imp_port, test=self)  # connects, sends nothing at all
        # meanwhile a fresh session works, during the stall
        ok = self.implicit_session()
        stalled = {"implicit partial": imp, "starttls partial": st, "implicit silent": silent}
        dropped = {}
        deadline = t0 + 2 + 4 * SCALE
        while stalled and time.monotonic() < deadline:
            # the working session is answered at once all along (and kept from idling out)
            t = time.monotonic()
            self.assertEqual(ok.cmd("NOOP").code, 250)
            self.assertLess(time.monotonic() - t, 0.5 * SCALE, "NOOP waited for the stalled handshakes")
            for name, c in list(stalled.items()):
                if closed_now(c):
                    dropped[name] = time.monotonic() - t0
                    del stalled[name]
            time.sleep(0.1)
        self.assertEqual(list(stalled), [], "stalled handshakes not dropped after %.1fs" % (time.monotonic() - t0))
        for name, waited in dropped.items():
            self.assertGreater(waited, 1.5, "%s dropped before the 2s timeout (%.2fs)" % (name, waited))
        self.active_session_works(ok, "after stall")

    def test_garbage_instead_of_client_hello(self):
        self.start()  # timeout_command 5m: a drop is at once or never
        before = self.implicit_session()
        st = self.clear_session()
        self.assertEqual(st.cmd("STARTTLS").raw, READY)
        t0 = time.monotonic()
        st.send(b"EHLO this.is.not.tls\r\nMAIL FROM:<x@example.test>\r\n")
        self.assertTrue(st.expect_closed(3), "garbage after STARTTLS not dropped")
        self.assertTrue(st.buf == b"" or st.buf.startswith(b"\x15\x03"), st.buf)  # at most an alert
        imp = TlsSMTP(self.imp_port, test=self)
        imp.send(b"EHLO plaintext.example.test\r\n")
        self.assertTrue(imp.expect_closed(3), "plaintext on an implicit listener not dropped")
        self.assertNotIn(b"220", imp.buf, "implicit listener answered in clear")
        imp2 = TlsSMTP(self.imp_port, test=self)
        imp2.send(b"\x16\x03\x01\x00\x05" + b"\xff" * 5)   # a record that is not a ClientHello
        self.assertTrue(imp2.expect_closed(3), "malformed ClientHello not dropped")
        self.assertLess(time.monotonic() - t0, 3 * SCALE)
        wait_log(self.gate, rb"TLS handshake failed", count=3)
        self.sink.assert_stored(self, 0, settle=0.1)
        # neither disturbed the others
        self.active_session_works(before, "garbage before")
        self.active_session_works(self.starttls_session(), "garbage after")


# ====================================================================== reload

class CertificateReload(TlsBase):
    def setUp(self):
        super().setUp()
        self.files = copy_certs(self, "server.crt", "server.key")
        self.start(tls={"certificate": self.files["server.crt"], "key": self.files["server.key"]})
        self.cert_line = self.config_line("certificate")

    def config_line(self, key):
        with open(self.gate.config_path) as f:
            for n, line in enumerate(f, 1):
                if line.startswith(key + " ="):
                    return n
        self.fail("no %s line in the config" % key)

    def replace(self, name, src_path=None, data=None):
        tmp = self.files[name] + ".new"
        if data is not None:
            with open(tmp, "wb") as f:
                f.write(data)
        else:
            shutil.copyfile(src_path, tmp)
        os.replace(tmp, self.files[name])

    def test_sighup_reloads_certificate(self):
        c = certs()
        old, new = pem_der(c["server.crt"]), pem_der(c["server-rsa.crt"])
        # a session opened before the reload, mid-transaction
        before = self.starttls_session()
        self.assertEqual(before.peer_der(), old)
        self.assertEqual(before.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        self.assertEqual(before.cmd("RCPT TO:<%s>" % TO).code, 250)
        imp_before = self.implicit_session()
        self.replace("server.crt", c["server-rsa.crt"])
        self.replace("server.key", c["server-rsa.key"])
        self.gate.reload()
        wait_log(self.gate, rb"reloaded ")
        for opener in (self.starttls_session, self.implicit_session):
            s = opener()
            self.assertEqual(s.peer_der(), new, "%s after SIGHUP: still the old certificate" % opener.__name__)
            s.close()
        # the old sessions complete their transactions after the reload
        self.assertEqual(before.cmd("DATA").code, 354)
        msg = body_for("before reload")
        before.send(dot_stuff(msg))
        r = before.reply(timeout=30)
        self.assertEqual(r.code, 250, r)
        self.assert_tls_delivery("before reload", msg)
        msg, _ = self.transaction(imp_before, "implicit before reload")
        self.assert_tls_delivery("implicit before reload", msg)

    def test_sighup_switches_starttls_off_and_on(self):
        with open(self.gate.config_path) as f:
            text = f.read()
        self.assertIn("tls = starttls\n", text)
        before = TlsSMTP(self.port, test=self)
        before.greeting()
        self.assertIn("STARTTLS", ehlo_keywords(before.ehlo()))
        self.gate.write_config(text.replace("tls = starttls\n", "tls = none\n", 1))
        self.gate.reload()
        wait_log(self.gate, rb"reloaded ")
        c = TlsSMTP(self.port, test=self)
        c.greeting()
        self.assertNotIn("STARTTLS", ehlo_keywords(c.ehlo()))
        self.assertEqual(c.cmd("STARTTLS").code, 502)
        # the session opened before keeps its configuration: STARTTLS still works there
        self.assertEqual(before.cmd("STARTTLS").raw, READY)
        before.handshake(client_context())
        before.ehlo()
        msg, _ = self.transaction(before, "starttls across reload")
        self.assert_tls_delivery("starttls across reload", msg)
        self.gate.write_config(text)
        self.gate.reload()
        wait_log(self.gate, rb"reloaded ", count=2)
        s = self.starttls_session()
        msg, _ = self.transaction(s, "starttls back on")
        self.assert_tls_delivery("starttls back on", msg)

    def test_sighup_bad_certificate_keeps_running(self):
        c = certs()
        old = pem_der(c["server.crt"])
        self.replace("server.crt", data=b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
                                         b"-----END CERTIFICATE-----\n")
        self.gate.reload()
        m = wait_log(self.gate, rb"reload failed, the running configuration stays: ([^\n]*)")
        self.assertIn(("%s:%d: " % (self.gate.config_path, self.cert_line)).encode(), m[0], m)
        self.assertTrue(self.gate.proc.alive())
        s = self.starttls_session()
        self.assertEqual(s.peer_der(), old, "the running certificate was dropped")
        msg, _ = self.transaction(s, "after bad reload")
        self.assert_tls_delivery("after bad reload", msg)
        # a key that does not match the (good) certificate: refused too
        self.replace("server.crt", c["server.crt"])
        self.replace("server.key", c["other.key"])
        self.gate.reload()
        m = wait_log(self.gate, rb"reload failed, the running configuration stays: ([^\n]*)", count=2)
        self.assertIn(("%s:%d: " % (self.gate.config_path, self.cert_line)).encode(), m[1], m)
        s = self.implicit_session()
        self.assertEqual(s.peer_der(), old)
        # fixed files: the next reload takes them
        self.replace("server.crt", c["server-rsa.crt"])
        self.replace("server.key", c["server-rsa.key"])
        self.gate.reload()
        wait_log(self.gate, rb"reloaded ")
        s = self.implicit_session()
        self.assertEqual(s.peer_der(), pem_der(c["server-rsa.crt"]))


# ====================================================================== config errors

class TlsConfigErrors(MxTestCase):
    def check(self, sections, key_or_section, want=None, rc=1):
        """mxgate -t on sections: exit rc; on error "FILE:LINE: " with LINE that of key_or_section."""
        status, out, text, path = check_config_file(self, sections)
        self.assertEqual(status, rc, "exit %d for:\n%s\n%s" % (status, text, out))
        if rc == 0:
            return out
        sect, _, key = key_or_section.partition("/")
        line = self.line_of(text, sect, key)
        self.assertIn("%s:%d: " % (path, line), out, "wanted line %d (%s) in:\n%s\n%s"
                      % (line, key_or_section, out, text))
        if want:
            self.assertRegex(out, want)
        return out

    line_of = staticmethod(config_line)

    def base(self, listener=None, tls=True, backend=None):
        cfg = gate_config(2525, [backend or "127.0.0.1:2600"], listener=listener)
        if tls:
            cfg["tls"] = tls_section() if tls is True else tls
        return cfg

    def test_valid_tls_configs(self):
        c = certs()
        cfg = self.base({"tls": "starttls", "require_tls": "yes"},
                        tls=tls_section(protocols="TLSv1.2, TLSv1.3", session_tickets="no"))
        cfg["listener imp"] = {"listen": "127.0.0.1:2465", "tls": "implicit", "relay_domains": "*"}
        cfg["tls other.example.test"] = {"certificate": c["other.crt"], "key": c["other.key"]}
        cfg["backend b2"] = {"address": "127.0.0.1:2601", "tls": "starttls", "tls_verify": "yes",
                             "tls_ca": c["ca.crt"]}
        cfg["backend b3"] = {"address": "127.0.0.1:2602", "tls": "starttls", "tls_verify": "no"}
        self.check(cfg, None, rc=0)
        # a [tls] with no listener using it is fine; the chain file and the RSA pair too
        self.check(self.base(tls=tls_section(certificate=c["server-chain.crt"])), None, rc=0)
        self.check(self.base(tls=tls_section(certificate=c["server-rsa.crt"], key=c["server-rsa.key"])),
                   None, rc=0)

    def test_tls_without_tls_section(self):
        for mode in ("starttls", "implicit"):
            with self.subTest(mode=mode):
                self.check(self.base({"tls": mode}, tls=False), "listener in/tls", r"\[tls\]")

    def test_require_tls_without_tls(self):
        self.check(self.base({"require_tls": "yes"}), "listener in/require_tls", r"require_tls")
        self.check(self.base({"require_tls": "yes", "tls": "none"}), "listener in/require_tls")

    def test_submission_needs_auth_and_tls(self):
        self.check(self.base({"mode": "submission", "tls": "starttls"}), "listener in/mode", r"\[auth\]")
        users = os.path.join(self.tmpdir, "users")
        with open(users, "w") as f:
            f.write("alice:$6$saltsalt$" + "a" * 86 + "\n")
        cfg = self.base({"mode": "submission"})
        cfg["auth"] = {"users": users}
        self.check(cfg, "listener in/mode", r"tls")

    def test_bad_protocols(self):
        self.check(self.base(tls=tls_section(protocols="TLSv1.1")), "tls/protocols", r"TLSv1\.1")
        self.check(self.base(tls=tls_section(protocols="SSLv3, TLSv1.3")), "tls/protocols")
        self.check(self.base(tls=tls_section(session_tickets="maybe")), "tls/session_tickets")

    def test_tls_section_keys_required(self):
        c = certs()
        self.check(self.base(tls={"certificate": c["server.crt"]}), "tls", r"key")
        self.check(self.base(tls={"key": c["server.key"]}), "tls", r"certificate")
        cfg = self.base()
        cfg["tls other.example.test"] = {"certificate": c["other.crt"]}
        self.check(cfg, "tls other.example.test")
        cfg = self.base(tls=False)
        cfg["tls other.example.test"] = {"certificate": c["other.crt"], "key": c["other.key"]}
        self.check(cfg, "tls other.example.test", r"\[tls\]")

    def test_certificate_files(self):
        c = certs()
        missing = os.path.join(self.tmpdir, "nope.crt")
        garbage = os.path.join(self.tmpdir, "garbage.crt")
        with open(garbage, "w") as f:
            f.write("this is not a certificate\n")
        key_as_cert = c["server.key"]
        cases = [
            ("missing certificate", {"certificate": missing}, re.escape(missing)),
            ("directory as certificate", {"certificate": self.tmpdir}, re.escape(self.tmpdir)),
            ("garbage certificate", {"certificate": garbage}, re.escape(garbage)),
            ("key file as certificate", {"certificate": key_as_cert}, None),
            ("missing key", {"key": missing}, re.escape(missing)),
            ("garbage key", {"key": garbage}, re.escape(garbage)),
            ("mismatched key", {"key": c["other.key"]}, r"match"),
            ("rsa key for ec certificate", {"key": c["server-rsa.key"]}, r"match"),
        ]
        for what, kw, want in cases:
            with self.subTest(case=what):
                self.check(self.base(tls=tls_section(**kw)), "tls/certificate", want)
        # an SNI site: the error names that section's certificate line
        cfg = self.base()
        cfg["tls other.example.test"] = {"certificate": c["other.crt"], "key": c["server.key"]}
        self.check(cfg, "tls other.example.test/certificate", r"match")
        cfg["tls other.example.test"] = {"certificate": missing, "key": c["other.key"]}
        self.check(cfg, "tls other.example.test/certificate", re.escape(missing))

    def test_backend_tls_keys(self):
        c = certs()
        missing = os.path.join(self.tmpdir, "no-ca.pem")
        # tls_ca without tls = starttls
        self.check(self.base(backend={"address": "127.0.0.1:2600", "tls_ca": c["ca.crt"]}),
                   "backend b1/tls_ca", r"starttls")
        self.check(self.base(backend={"address": "127.0.0.1:2600", "tls": "sometimes"}), "backend b1/tls")
        self.check(self.base(backend={"address": "127.0.0.1:2600", "tls": "starttls",
                                      "tls_verify": "perhaps"}), "backend b1/tls_verify")
        # an unreadable CA file: the file is named, and the backend's line (section or tls_ca)
        cfg = self.base(backend={"address": "127.0.0.1:2600", "tls": "starttls", "tls_ca": missing})
        status, out, text, path = check_config_file(self, cfg)
        self.assertEqual(status, 1, out)
        lines = (self.line_of(text, "backend b1", None), self.line_of(text, "backend b1", "tls_ca"))
        self.assertTrue(any("%s:%d: " % (path, n) in out for n in lines), out)
        self.assertIn(missing, out)


# ====================================================================== backend TLS

class BackendTls(MxTestCase):
    def gate_to(self, backends):
        """One mxgate, a listener per backend dict (listener NAME -> backend NAME); returns {name: port}."""
        ports = {name: free_port() for name in backends}
        first = list(backends)[0]
        cfg = {"server": {"hostname": HOSTNAME, "workers": 1, "drain_timeout": "5s"}}
        for name in backends:
            cfg["listener %s" % name] = {"listen": "127.0.0.1:%d" % ports[name],
                                         "relay_domains": "example.test", "backends": name}
        for name, b in backends.items():
            cfg["backend %s" % name] = b
        self.gate = start_mxgate(self, cfg, port=ports[first])
        for p in ports.values():
            wait_until(lambda: port_open(p), 10, what="listener %d" % p)
        return ports

    def send_plain(self, port, subject, expect_mail=250):
        c = TlsSMTP(port, test=self)
        self.assertEqual(c.greeting().code, 220)
        c.ehlo()
        r = c.cmd("MAIL FROM:<%s>" % FROM)
        self.assertEqual(r.code, expect_mail, r)
        if expect_mail != 250:
            return r, None
        msg = body_for(subject)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % TO).code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        c.send(dot_stuff(msg))
        r = c.reply(timeout=30)
        self.assertEqual(r.code, 250, r)
        c.cmd("QUIT")
        return r, msg

    def test_postfix_backend_starttls(self):
        why = postfix_skip_reason()
        if why:
            self.skipTest(why)
        c = certs()
        pf = start_postfix_smtpd(self, extra_main={
            "smtpd_tls_security_level": "may",
            "smtpd_tls_chain_files": "%s, %s" % (c["server.key"], c["server.crt"]),
            "smtpd_tls_loglevel": "1",
            "smtpd_tls_received_header": "yes",
        }, extra_services=[("tlsmgr", "unix", "-", "-", "n", "1000?", "1", "tlsmgr")])
        addr = "127.0.0.1:%d" % pf.port
        ports = self.gate_to({
            "verified": {"address": addr, "tls": "starttls", "tls_verify": "yes", "tls_ca": c["ca.crt"]},
            "unverified": {"address": addr, "tls": "starttls", "tls_verify": "no"},
            "wrongca": {"address": addr, "tls": "starttls", "tls_verify": "yes",
                        "tls_ca": c["selfsigned.crt"]},
        })
        for name in ("verified", "unverified"):
            with self.subTest(backend=name):
                r, _ = self.send_plain(ports[name], "to postfix %s" % name)
                m = re.search(rb"queued as ([0-9A-Za-z]+)", r.raw)
                self.assertTrue(m, r)
                self.assert_postfix_tls(pf, m.group(1).decode())
        # a certificate the CA file does not vouch for: the backend is down
        r, _ = self.send_plain(ports["wrongca"], None, expect_mail=451)
        self.assertEqual(enhanced(r), "4.4.1", r)

    def assert_postfix_tls(self, pf, qid):
        """The smtpd process that queued qid logged a TLS connection."""
        deadline = time.monotonic() + 10 * SCALE
        while True:
            log = pf.log().decode("utf-8", "replace")
            m = re.search(r"smtpd\[(\d+)\]: %s: client=" % qid, log)
            if m:
                pid = m.group(1)
                tls = re.findall(r"smtpd\[%s\]: \w+ TLS connection established from \S+: (TLSv1\.[23]) "
                                 r"with cipher (\S+)" % pid, log)
                if tls:
                    return tls[-1]
            if time.monotonic() >= deadline:
                self.fail("Postfix did not log a TLS connection for %s; maillog:\n%s" % (qid, log[-4000:]))
            time.sleep(0.1)

    def test_backend_without_starttls_is_down(self):
        sink = start_mxsink(self)
        ports = self.gate_to({"plainsink": {"address": sink.address, "tls": "starttls", "tls_verify": "no"}})
        r, _ = self.send_plain(ports["plainsink"], None, expect_mail=451)
        self.assertEqual(enhanced(r), "4.4.1", r)
        sink.assert_stored(self, 0, settle=0.1)
        self.assertRegex(self.gate.log(), rb"(?i)starttls")

    def test_mxsink_tls_backend(self):
        help_text = subprocess.run([binary("mxsink"), "--help"], capture_output=True, timeout=10)
        if b"--tls-cert" not in help_text.stdout + help_text.stderr:
            self.skipTest("mxsink has no --tls-cert/--tls-key yet (backend TLS against mxsink)")
        c = certs()
        sink = start_mxsink(self, extra_args=["--tls-cert", c["server.crt"], "--tls-key", c["server.key"]])
        ports = self.gate_to({
            "verified": {"address": sink.address, "tls": "starttls", "tls_verify": "yes", "tls_ca": c["ca.crt"]},
            "unverified": {"address": sink.address, "tls": "starttls", "tls_verify": "no"},
            "wrongca": {"address": sink.address, "tls": "starttls", "tls_verify": "yes",
                        "tls_ca": c["selfsigned.crt"]},
            "cleartext": {"address": sink.address},
            "xclient": {"address": sink.address, "tls": "starttls", "tls_verify": "yes",
                        "tls_ca": c["ca.crt"], "forward_client": "xclient"},
        })
        for name in ("verified", "unverified", "cleartext", "xclient"):
            with self.subTest(backend=name):
                subject = "mxsink tls %s" % name
                _, msg = self.send_plain(ports[name], subject)
                needle = b"\r\nSubject: " + subject.encode() + b"\r\n"
                wait_until(lambda: any(needle in m["data"] for m in sink.messages()), 10,
                           what="message %r" % subject)
                m = [m for m in sink.messages() if needle in m["data"]][0]
                self.assertDeliveredExact(m, msg, mail_from=FROM, rcpts=[TO])
                tls_lines = re.findall(rb"(?m)^TLS (\S+) (\S+)", m["env"])
                if name == "cleartext":
                    self.assertEqual(tls_lines, [], m["env"])
                else:
                    self.assertEqual(len(tls_lines), 1, m["env"])
                    self.assertIn(tls_lines[0][0], (b"TLSv1.2", b"TLSv1.3"), m["env"])
                if name == "xclient":
                    # XCLIENT went over the TLS link (and the link stayed TLS for the message)
                    self.assertRegex(m["env"], rb"(?m)^XCLIENT .*ADDR=127\.0\.0\.1\b", m["env"])
        r, _ = self.send_plain(ports["wrongca"], None, expect_mail=451)
        self.assertEqual(enhanced(r), "4.4.1", r)
        # backend links are pooled: more messages over "verified" reuse its TLS link
        for i in range(3):
            self.send_plain(ports["verified"], "reuse %d" % i)
        totals = sink.stop_and_totals()
        if "tls" in totals:
            # without reuse: 4 sessions for "verified" alone, 6 in all
            self.assertLessEqual(totals["tls"], 5, totals)

    def test_mxsink_tls_large_message(self):
        help_text = subprocess.run([binary("mxsink"), "--help"], capture_output=True, timeout=10)
        if b"--tls-cert" not in help_text.stdout + help_text.stderr:
            self.skipTest("mxsink has no --tls-cert/--tls-key yet (backend TLS against mxsink)")
        c = certs()
        sink = start_mxsink(self, extra_args=["--tls-cert", c["server.crt"], "--tls-key", c["server.key"]])
        port = free_port()
        cfg = gate_config(port, [{"address": sink.address, "tls": "starttls", "tls_ca": c["ca.crt"]}],
                          listener={"tls": "implicit"})
        cfg["tls"] = tls_section()
        start_mxgate(self, cfg)
        body = b"".join(b"%07d " % i + b"y" * 90 + b"\r\n" for i in range(40000))   # ~4 MB
        msg = make_message(subject="large both legs", body=body + b".\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", port, context=client_context(), timeout=60 * SCALE) as s:
            self.assertEqual(s.sendmail(FROM, [TO], msg), {})
        m = sink.wait_messages(1)[0]
        self.assertDeliveredExact(m, msg, mail_from=FROM, rcpts=[TO])
        self.assertRegex(m["env"], rb"(?m)^TLS TLSv1\.[23] ")


if __name__ == "__main__":
    unittest.main()
