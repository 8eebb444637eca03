"""
SMTP AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN: offered only under
TLS and only with [auth]; mode = submission requires it; the replies of
every outcome; yescrypt, sha512-crypt and bcrypt users; auth_failure_rate;
an authenticated client relays anywhere, its login reaches the backend
(XCLIENT LOGIN=) and the Received: header; the password check runs off
the ring thread; SIGHUP reloads the users file. Real clients: smtplib
login(), swaks -a, curl --user. Config errors through mxgate -t.

The users file holds crypt(3) hashes made by mkpasswd (package whois)
when installed, else by libcrypt through ctypes (tls_fixtures.make_hash).
"""

import base64
import os
import re
import resource
import shutil
import signal
import smtplib
import threading
import time
import unittest

from harness import (enhanced, HOSTNAME, SCALE, MxTestCase, Proc, binary, check_config_file, config_line, dot_stuff,
                     free_port, gate_config, make_message, port_open, postfix_skip_reason,
                     smtp_from, start_mxgate, start_mxsink, start_postfix_smtpd,
                     strip_first_received, wait_until, align_window, redis_section, start_redis)
from tls_fixtures import (TlsSMTP, certs, client_context, ehlo_keywords, make_hash, received_tls,
                          received_with, run_tool, tls_section, wait_log, write_users)

FROM = "alice@example.test"
TO = "b@example.test"
FOREIGN = "someone@elsewhere.example"
READY = b"220 2.0.0 Ready to start TLS\r\n"

PASSWORDS = {"alice": "alice-pw", "bob": "bob pw with spaces", "carol": "carol-pw\u00e9"}
SCHEMES = {"alice": "yescrypt", "bob": "sha512crypt", "carol": "bcrypt"}
LONG_PW = "L" * 400   # RFC 4954 4: AUTH lines may be 12288 octets; libcrypt takes at most 512
HASHES = {}


def setUpModule():
    for user, scheme in SCHEMES.items():
        HASHES[user] = make_hash(scheme, PASSWORDS[user])
    HASHES["longpw"] = make_hash("sha512crypt", LONG_PW)


def b64(data):
    if isinstance(data, str):
        data = data.encode()
    return base64.b64encode(data).decode()


def plain(user, password, authz=""):
    return b64("%s\0%s\0%s" % (authz, user, password))



def attrs_of(env, verb):
    """[{ATTR: value}] for each "VERB ATTR=value ..." line of an .env sidecar."""
    out = []
    for line in env.decode("utf-8", "replace").splitlines():
        if line.startswith(verb + " "):
            out.append(dict(tok.split("=", 1) for tok in line[len(verb) + 1:].split(" ") if "=" in tok))
    return out


class AuthBase(MxTestCase):
    """
    mxsink --store, and mxgate with listeners: sub (submission, starttls,
    self.port), smtps (submission, implicit), mx (relay, starttls,
    relay_domains example.test), plain (relay, tls none).
    """

    def start(self, users=None, auth=None, limits=None, backend=None, server=None, sink=None, redis=None,
              on_failure=None):
        self.sink = sink or start_mxsink(self)
        self.users_path = write_users(self, users or HASHES)
        ports = {n: free_port() for n in ("sub", "smtps", "mx", "plain")}
        self.ports = ports
        self.port = ports["sub"]
        b = {"address": self.sink.address}
        b.update(backend or {})
        cfg = gate_config(ports["sub"], [b], server=server,
                          listener={"mode": "submission", "tls": "starttls"})
        del cfg["listener in"]["relay_domains"]
        cfg["listener smtps"] = {"listen": "127.0.0.1:%d" % ports["smtps"], "mode": "submission",
                                 "tls": "implicit"}
        cfg["listener mx"] = {"listen": "127.0.0.1:%d" % ports["mx"], "tls": "starttls",
                              "relay_domains": "example.test"}
        cfg["listener plain"] = {"listen": "127.0.0.1:%d" % ports["plain"], "relay_domains": "example.test"}
        cfg["tls"] = tls_section()
        a = {"users": self.users_path}
        a.update(auth or {})
        cfg["auth"] = a
        if limits:
            cfg["limits"] = limits
        if redis:
            cfg["redis"] = redis_section(redis, **({"on_failure": on_failure} if on_failure else {}))
        self.gate = start_mxgate(self, cfg)
        for p in ports.values():
            wait_until(lambda: port_open(p), 10, what="listener %d" % p)
        return self.gate

    def session(self, listener="sub", ehlo=True, source=None):
        """A TLS session on listener (STARTTLS, or implicit for smtps), EHLO'd under TLS."""
        port = self.ports[listener]
        c = TlsSMTP(port, test=self, source=source)
        if listener == "smtps":
            c.handshake(client_context())
            self.assertEqual(c.greeting().code, 220)
        else:
            self.assertEqual(c.greeting().code, 220)
            c.ehlo()
            self.assertEqual(c.cmd("STARTTLS").raw, READY)
            c.handshake(client_context())
        if ehlo:
            r = c.ehlo()
            self.assertEqual(r.code, 250, r)
            c.last_ehlo = r
        return c

    def login(self, c, user, password=None, expect=235):
        r = c.cmd("AUTH PLAIN " + plain(user, PASSWORDS.get(user) if password is None else password))
        self.assertEqual(r.code, expect, r)
        if expect == 235:
            self.assertEqual(r.raw, b"235 2.7.0 Authentication successful\r\n")
        return r

    def deliver(self, c, subject, rcpts=(TO,), mail_from=FROM):
        msg = make_message(subject=subject, body=b"body of %s\r\n.dot line\r\n" % subject.encode())
        self.send_message(c, mail_from, list(rcpts), dot_stuff(msg))
        return msg

    def stored(self, subject, timeout=10.0):
        needle = b"\r\nSubject: " + subject.encode() + b"\r\n"
        wait_until(lambda: any(needle in m["data"] for m in self.sink.messages()), timeout,
                   what="stored message %r" % subject)
        found = [m for m in self.sink.messages() if needle in m["data"]]
        self.assertEqual(len(found), 1, found)
        return found[0]

    def assert_authenticated_delivery(self, subject, msg, user, rcpts=(TO,)):
        m = self.stored(subject)
        self.assertDeliveredExact(m, msg, mail_from=FROM, rcpts=list(rcpts))
        received, _ = strip_first_received(m["data"])
        self.assertIn(b"(Authenticated sender: %s)" % user.encode(), received)
        self.assertEqual(received_with(received), "ESMTPSA", received)
        self.assertIsNotNone(received_tls(received), received)
        return m


# ====================================================================== the dialog

class AuthDialog(AuthBase):
    def setUp(self):
        super().setUp()
        # these tests make many errors on purpose: max_errors is tested elsewhere
        self.start(server={"max_errors": 100})

    def test_auth_offered_only_under_tls(self):
        for listener in ("sub", "mx"):
            with self.subTest(listener=listener):
                c = TlsSMTP(self.ports[listener], test=self)
                c.greeting()
                kw = ehlo_keywords(c.ehlo())
                self.assertNotIn("AUTH", kw, "AUTH offered in clear")
                self.assertIn("STARTTLS", kw)
                # AUTH in clear, even with valid credentials: refused, and not remembered
                r = c.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"]))
                self.assertEqual(r.code, 530, r)
                self.assertEqual(enhanced(r), "5.7.0", r)
                self.assertEqual(c.cmd("STARTTLS").raw, READY)
                c.handshake(client_context())
                kw = ehlo_keywords(c.ehlo())
                self.assertEqual(kw.get("AUTH"), b"AUTH PLAIN LOGIN")
                if listener == "sub":
                    r = c.cmd("MAIL FROM:<%s>" % FROM)
                    self.assertEqual(r.code, 530, "AUTH in clear was remembered: %r" % r)
        c = self.session("smtps")
        self.assertEqual(ehlo_keywords(c.last_ehlo).get("AUTH"), b"AUTH PLAIN LOGIN")
        # a tls = none listener offers neither, and AUTH there does not authenticate
        p = TlsSMTP(self.ports["plain"], test=self)
        p.greeting()
        kw = ehlo_keywords(p.ehlo())
        self.assertNotIn("AUTH", kw)
        r = p.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"]))
        self.assertGreaterEqual(r.code, 500, r)
        self.assertEqual(p.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        self.assertEqual(p.cmd("RCPT TO:<%s>" % FOREIGN).code // 100, 5, "relayed without AUTH")

    def test_submission_requires_auth(self):
        for listener in ("sub", "smtps"):
            with self.subTest(listener=listener):
                c = self.session(listener)
                r = c.cmd("MAIL FROM:<%s>" % FROM)
                self.assertEqual(r.code, 530, r)
                self.assertEqual(enhanced(r), "5.7.0", r)
                self.assertIn(b"Authentication required", r.raw)
                r = c.cmd("RCPT TO:<%s>" % TO)
                self.assertEqual(r.code, 503, r)
                self.login(c, "alice")
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        self.sink.assert_stored(self, 0, settle=0.1)

    def test_plain_initial_response_relays_anywhere(self):
        c = self.session("sub")
        self.login(c, "alice")
        # once authenticated, EHLO no longer offers AUTH (a second AUTH is 503)
        msg = self.deliver(c, "plain ir", rcpts=(TO, FOREIGN))
        self.assertEqual(c.cmd("QUIT").code, 221)
        self.assert_authenticated_delivery("plain ir", msg, "alice", rcpts=(TO, FOREIGN))
        wait_log(self.gate, rb"auth=alice ok")

    def test_plain_without_initial_response(self):
        c = self.session("smtps")
        r = c.cmd("AUTH PLAIN")
        self.assertEqual(r.code, 334, r)
        self.assertEqual(r.raw.rstrip(b"\r\n").rstrip(b" "), b"334")
        r = c.cmd(plain("bob", PASSWORDS["bob"]))
        self.assertEqual(r.raw, b"235 2.7.0 Authentication successful\r\n")
        msg = self.deliver(c, "plain continuation", rcpts=(FOREIGN,))
        self.assert_authenticated_delivery("plain continuation", msg, "bob", rcpts=(FOREIGN,))

    def test_login_with_and_without_initial_response(self):
        c = self.session("sub")
        r = c.cmd("AUTH LOGIN")
        self.assertEqual(r.raw, b"334 VXNlcm5hbWU6\r\n")
        r = c.cmd(b64("carol"))
        self.assertEqual(r.raw, b"334 UGFzc3dvcmQ6\r\n")
        r = c.cmd(b64(PASSWORDS["carol"]))
        self.assertEqual(r.raw, b"235 2.7.0 Authentication successful\r\n")
        msg = self.deliver(c, "login no ir")
        self.assert_authenticated_delivery("login no ir", msg, "carol")
        c = self.session("sub")
        r = c.cmd("AUTH LOGIN " + b64("alice"))
        self.assertEqual(r.raw, b"334 UGFzc3dvcmQ6\r\n")
        r = c.cmd(b64(PASSWORDS["alice"]))
        self.assertEqual(r.code, 235, r)
        msg = self.deliver(c, "login ir")
        self.assert_authenticated_delivery("login ir", msg, "alice")

    def test_every_hash_scheme(self):
        for user, scheme in SCHEMES.items():
            with self.subTest(user=user, scheme=scheme):
                self.assertTrue(HASHES[user].startswith({"yescrypt": "$y$", "sha512crypt": "$6$",
                                                         "bcrypt": "$2b$"}[scheme]))
                c = self.session("sub")
                r = self.login(c, user, PASSWORDS[user] + "x", expect=535)
                self.assertEqual(enhanced(r), "5.7.8", r)
                self.login(c, user)
                c.close()

    def test_wrong_credentials(self):
        c = self.session("sub")
        for user, pw in (("alice", "wrong"), ("alice", "ALICE-PW"), ("nobody", "alice-pw"),
                         ("ALICE", PASSWORDS["alice"]), ("alice", PASSWORDS["alice"] + " ")):
            with self.subTest(user=user, pw=pw):
                r = self.login(c, user, pw, expect=535)
                self.assertEqual(enhanced(r), "5.7.8", r)
                self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 530)
        # LOGIN with a wrong password
        self.assertEqual(c.cmd("AUTH LOGIN " + b64("bob")).code, 334)
        r = c.cmd(b64("not bob's"))
        self.assertEqual(r.code, 535, r)
        # without a failure limit, the right password still works in the same session
        self.login(c, "alice")
        wait_log(self.gate, rb"auth=nobody failed")

    def test_abort_malformed_unknown_twice(self):
        c = self.session("sub")
        # "*" aborts, at every step
        for start in ("AUTH PLAIN", "AUTH LOGIN", "AUTH LOGIN " + b64("alice")):
            with self.subTest(abort_after=start):
                r = c.cmd(start)
                self.assertEqual(r.code, 334, r)
                r = c.cmd("*")
                self.assertEqual(r.code, 501, r)
                self.assertEqual(enhanced(r), "5.7.0", r)
        self.assertEqual(c.cmd("AUTH LOGIN").code, 334)
        self.assertEqual(c.cmd(b64("alice")).code, 334)
        r = c.cmd("*")
        self.assertEqual((r.code, enhanced(r)), (501, "5.7.0"), r)
        # malformed base64: 501 5.5.2
        for bad in ("AUTH PLAIN !!!!", "AUTH PLAIN YWxpY2U",        # not base64 / no padding
                    "AUTH PLAIN " + b64("alice"),                     # no NULs
                    "AUTH PLAIN " + plain("alice", PASSWORDS["alice"], authz="bob"),  # another identity
                    "AUTH LOGIN a b c d"):
            with self.subTest(bad=bad):
                r = c.cmd(bad)
                self.assertEqual(r.code, 501, r)
                if bad != "AUTH LOGIN a b c d":
                    self.assertEqual(enhanced(r), "5.5.2", r)
        self.assertEqual(c.cmd("AUTH PLAIN").code, 334)
        r = c.cmd("not base64!")
        self.assertEqual((r.code, enhanced(r)), (501, "5.5.2"), r)
        # unknown mechanisms: 504 5.5.4
        for mech in ("CRAM-MD5", "XOAUTH2 abc=", "GSSAPI", "SCRAM-SHA-256"):
            with self.subTest(mech=mech):
                r = c.cmd("AUTH " + mech)
                self.assertEqual((r.code, enhanced(r)), (504, "5.5.4"), r)
        # none of that authenticated anyone
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 530)
        # authzid equal to the user is the same identity
        r = c.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"], authz="alice"))
        self.assertEqual(r.code, 235, r)
        # AUTH twice: 503
        r = c.cmd("AUTH PLAIN " + plain("bob", PASSWORDS["bob"]))
        self.assertEqual(r.code, 503, r)
        msg = self.deliver(c, "after errors")
        self.assert_authenticated_delivery("after errors", msg, "alice")

    def test_auth_needs_ehlo_and_no_transaction(self):
        c = self.session("mx", ehlo=False)
        r = c.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"]))
        self.assertEqual(r.code, 503, "AUTH before EHLO under TLS: %r" % r)
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        r = c.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"]))
        self.assertEqual(r.code, 503, "AUTH inside a transaction: %r" % r)
        self.assertEqual(c.cmd("RSET").code, 250)
        self.login(c, "alice")

    def test_relay_listener_authenticated_relays_anywhere(self):
        c = self.session("mx")
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % FROM).code, 250)
        r = c.cmd("RCPT TO:<%s>" % FOREIGN)
        self.assertIn(r.code, (550, 554), r)
        self.assertEqual(enhanced(r), "5.7.1", r)
        self.assertEqual(c.cmd("RCPT TO:<%s>" % TO).code, 250, "a relayed domain is still accepted")
        self.assertEqual(c.cmd("RSET").code, 250)
        self.login(c, "carol")
        msg = self.deliver(c, "relay authenticated", rcpts=(FOREIGN, TO))
        self.assert_authenticated_delivery("relay authenticated", msg, "carol", rcpts=(FOREIGN, TO))
        # unauthenticated mail through the same listener: ESMTPS, no Authenticated sender
        c = self.session("mx")
        msg = self.deliver(c, "relay anonymous")
        m = self.stored("relay anonymous")
        received, _ = strip_first_received(m["data"])
        self.assertNotIn(b"Authenticated", received)
        self.assertEqual(received_with(received), "ESMTPS", received)

    def test_long_password(self):
        """RFC 4954 section 4: an AUTH command line may be up to 12288 octets."""
        line = "AUTH PLAIN " + plain("longpw", LONG_PW)
        self.assertGreater(len(line) + 2, 512)
        self.assertGreater(len(b64(LONG_PW)) + 2, 512)
        with self.subTest(way="PLAIN initial response"):
            c = self.session("sub")
            r = c.cmd(line)
            self.assertEqual(r.code, 235, "AUTH PLAIN with a %d-octet line: %r" % (len(line) + 2, r))
        with self.subTest(way="PLAIN continuation"):
            c = self.session("sub")
            self.assertEqual(c.cmd("AUTH PLAIN").code, 334)
            r = c.cmd(plain("longpw", LONG_PW))
            self.assertEqual(r.code, 235, "a %d-octet PLAIN response: %r" % (len(plain("longpw", LONG_PW)), r))
        with self.subTest(way="LOGIN"):
            c = self.session("sub")
            self.assertEqual(c.cmd("AUTH LOGIN " + b64("longpw")).code, 334)
            r = c.cmd(b64(LONG_PW))
            self.assertEqual(r.code, 235, "a %d-octet LOGIN response: %r" % (len(b64(LONG_PW)), r))
        with self.subTest(way="other commands keep the 512 limit"):
            c = self.session("sub")
            r = c.cmd("NOOP " + "x" * 600)
            self.assertEqual(r.code, 500, r)
            # an AUTH line is not a way around the limit for other verbs either
            r = c.cmd("AUTH PLAIN " + "A" * 20000)
            self.assertEqual(r.code // 100, 5, r)
            self.assertEqual(c.cmd("NOOP").code, 250)

    def test_pipelined_auth_then_mail(self):
        """Commands sent behind AUTH wait for its verdict (the check runs elsewhere)."""
        c = self.session("sub")
        c.send("AUTH PLAIN %s\r\nMAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n"
               % (plain("alice", PASSWORDS["alice"]), FROM, FOREIGN))
        rs = c.replies(3)
        self.assertEqual([r.code for r in rs], [235, 250, 250], rs)
        c = self.session("sub")
        c.send("AUTH PLAIN %s\r\nMAIL FROM:<%s>\r\n" % (plain("alice", "bad"), FROM))
        rs = c.replies(2)
        self.assertEqual([r.code for r in rs], [535, 530], rs)

    def test_smtplib_login(self):
        msg = make_message(subject="smtplib login", body=b"via smtplib\r\n")
        with smtplib.SMTP("127.0.0.1", self.ports["sub"], local_hostname="py.example.test",
                          timeout=10 * SCALE) as s:
            s.starttls(context=client_context())
            s.ehlo()
            self.assertIn("PLAIN", s.esmtp_features.get("auth", ""))
            code, _ = s.login("alice", PASSWORDS["alice"])
            self.assertEqual(code, 235)
            self.assertEqual(s.sendmail(FROM, [FOREIGN], msg), {})
        self.assert_authenticated_delivery("smtplib login", msg, "alice", rcpts=(FOREIGN,))
        msg = make_message(subject="smtplib ssl login", body=b"via SMTP_SSL\r\n")
        with smtplib.SMTP_SSL("127.0.0.1", self.ports["smtps"], local_hostname="py.example.test",
                              context=client_context(), timeout=10 * SCALE) as s:
            s.ehlo()
            s.user, s.password = "bob", PASSWORDS["bob"]   # smtplib's LOGIN is ASCII only
            code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
            self.assertEqual(code, 235)
            self.assertEqual(s.sendmail(FROM, [TO], msg), {})
        self.assert_authenticated_delivery("smtplib ssl login", msg, "bob")
        with smtplib.SMTP_SSL("127.0.0.1", self.ports["smtps"], context=client_context(),
                              timeout=10 * SCALE) as s:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
                s.login("alice", "wrong")
            self.assertEqual(e.exception.smtp_code, 535)

    def test_swaks_auth(self):
        if not shutil.which("swaks"):
            self.skipTest("swaks is not installed")
        for mech, mode, listener in (("PLAIN", "--tls", "sub"), ("LOGIN", "--tlsc", "smtps")):
            with self.subTest(mech=mech):
                subject = "swaks %s" % mech
                text = "From: %s\nTo: %s\nSubject: %s\n\nswaks body\n.dot" % (FROM, FOREIGN, subject)
                path = os.path.join(self.tmpdir, "swaks-%s.txt" % mech)
                with open(path, "w") as f:
                    f.write(text)
                rc, out = run_tool(self, ["swaks", "--server", "127.0.0.1:%d" % self.ports[listener], mode,
                                          "--tls-verify", "--tls-ca-path", certs()["ca.crt"],
                                          "--tls-sni", "mx.example.test", "-a", mech,
                                          "--auth-user", "bob", "--auth-password", PASSWORDS["bob"],
                                          "--from", FROM, "--to", FOREIGN, "--data", "@" + path,
                                          "--timeout", "20"])
                self.assertEqual(rc, 0, out)
                self.assertRegex(out, r"<~\s+235 2\.7\.0")
                sent = (text.replace("\n", "\r\n") + "\r\n").encode()
                self.assert_authenticated_delivery(subject, sent, "bob", rcpts=(FOREIGN,))
        rc, out = run_tool(self, ["swaks", "--server", "127.0.0.1:%d" % self.ports["sub"], "--tls",
                                  "--tls-ca-path", certs()["ca.crt"], "-a", "PLAIN", "--auth-user",
                                  "bob", "--auth-password", "wrong", "--from", FROM, "--to", TO,
                                  "--timeout", "20"])
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"<~\*\s+535 5\.7\.8")

    def test_curl_auth(self):
        for mech, url, tls in (("PLAIN", "smtp://127.0.0.1:%d" % self.ports["sub"], ["--ssl-reqd"]),
                               ("LOGIN", "smtps://127.0.0.1:%d" % self.ports["smtps"], [])):
            with self.subTest(mech=mech):
                subject = "curl %s" % mech
                msg = make_message(subject=subject, body=b"curl body\r\n..\r\n")
                path = os.path.join(self.tmpdir, "curl-%s.eml" % mech)
                with open(path, "wb") as f:
                    f.write(msg)
                rc, out = run_tool(self, ["curl", "-sS", "--max-time", "20", "--cacert", certs()["ca.crt"]] +
                                   tls + [url, "--user", "carol:" + PASSWORDS["carol"],
                                          "--login-options", "AUTH=" + mech, "--mail-from", FROM,
                                          "--mail-rcpt", FOREIGN, "--upload-file", path])
                self.assertEqual(rc, 0, out)
                self.assert_authenticated_delivery(subject, msg, "carol", rcpts=(FOREIGN,))
        rc, out = run_tool(self, ["curl", "-sS", "--max-time", "20", "-k", "--ssl-reqd",
                                  "smtp://127.0.0.1:%d" % self.ports["sub"], "--user", "carol:nope",
                                  "--mail-from", FROM, "--mail-rcpt", TO, "-T", "/dev/null"])
        self.assertEqual(rc, 67, "curl: wanted 'login denied' (67): " + out)


# ====================================================================== configured variants

class AuthConfigured(AuthBase):
    def test_mechanisms_plain_only(self):
        self.start(auth={"mechanisms": "PLAIN"})
        c = self.session("sub")
        self.assertEqual(ehlo_keywords(c.last_ehlo).get("AUTH"), b"AUTH PLAIN")
        r = c.cmd("AUTH LOGIN")
        self.assertEqual((r.code, enhanced(r)), (504, "5.5.4"), r)
        self.login(c, "alice")

    def test_mechanisms_login_only(self):
        self.start(auth={"mechanisms": "login"})
        c = self.session("smtps")
        self.assertEqual(ehlo_keywords(c.last_ehlo).get("AUTH"), b"AUTH LOGIN")
        r = c.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"]))
        self.assertEqual((r.code, enhanced(r)), (504, "5.5.4"), r)
        self.assertEqual(c.cmd("AUTH LOGIN " + b64("alice")).code, 334)
        self.assertEqual(c.cmd(b64(PASSWORDS["alice"])).code, 235)

    def test_no_auth_section_no_auth(self):
        sink = start_mxsink(self)
        port = free_port()
        cfg = gate_config(port, [sink], listener={"tls": "starttls"})
        cfg["tls"] = tls_section()
        start_mxgate(self, cfg)
        self.ports = {"mx": port}
        c = self.session("mx")
        self.assertNotIn("AUTH", ehlo_keywords(c.last_ehlo))
        r = c.cmd("AUTH PLAIN " + plain("alice", PASSWORDS["alice"]))
        self.assertEqual(r.code, 503, r)

    def test_auth_failure_rate(self):
        """auth_failure_rate = 2/1m: the third failure gets 421 4.7.0 and the connection closes."""
        self.start(limits={"auth_failure_rate": "2/1m"})
        c = self.session("sub", source="127.0.0.2")
        for i in range(2):
            r = self.login(c, "alice", "wrong %d" % i, expect=535)
        # a LOGIN failure counts the same
        self.assertEqual(c.cmd("AUTH LOGIN " + b64("alice")).code, 334)
        r = c.cmd(b64("wrong 3"))
        self.assertEqual(r.code, 421, r)
        self.assertEqual(enhanced(r), "4.7.0", r)
        self.assertTrue(c.expect_closed(3), "connection not closed after the 421")
        wait_log(self.gate, rb"too many AUTH failures")
        # charged per client: the next failure from 127.0.0.2 is over the rate at once
        c = self.session("smtps", source="127.0.0.2")
        r = self.login(c, "bob", "wrong", expect=421)
        self.assertTrue(c.expect_closed(3))
        # another client is not affected, and successes are not charged
        c = self.session("sub", source="127.0.0.3")
        self.login(c, "alice", "wrong", expect=535)
        self.login(c, "alice")
        for i in range(3):
            c = self.session("smtps", source="127.0.0.3")
            self.login(c, "bob")
        c = self.session("sub", source="127.0.0.3")
        self.login(c, "bob", "wrong", expect=535)
        self.login(c, "bob", "wrong again", expect=421)
        self.assertTrue(c.expect_closed(3))

    def check_cut_off_holds(self, redis=None):
        """Once the failure window is full, the right password on a new connection gets 421 with
        no password check at all (no more guesses until the window ends); then it works again."""
        window = 4
        self.start(limits={"auth_failure_rate": "2/%ds" % window}, redis=redis)
        align_window(window, redis=redis is not None)
        c = self.session("sub", source="127.0.0.4")
        self.login(c, "alice", "wrong 1", expect=535)
        self.login(c, "alice", "wrong 2", expect=535)
        for listener in ("smtps", "sub"):
            c = self.session(listener, source="127.0.0.4")
            r = self.login(c, "alice", expect=421)
            self.assertEqual(enhanced(r), "4.7.0", r)
            self.assertTrue(c.expect_closed(3), "connection not closed after the 421")
        log = self.gate.log()
        self.assertEqual(len(re.findall(rb"client=127\.0\.0\.4:\d+ auth=alice failed", log)), 2, log[-2000:])
        self.assertIsNone(re.search(rb"client=127\.0\.0\.4:\d+ auth=alice ok", log), log[-2000:])
        self.assertEqual(len(re.findall(rb"client=127\.0\.0\.4:\d+ too many AUTH failures", log)), 2)
        # another client is not affected
        self.login(self.session("sub", source="127.0.0.5"), "alice")
        # the next window has room again (past the first 0.3 s of this one, align_window waits for it)
        time.sleep(0.35)
        align_window(window, redis=redis is not None)
        self.login(self.session("sub", source="127.0.0.4"), "alice")

    def test_cut_off_check_with_redis_down(self):
        """The failure window cannot be read (Redis stopped): on_failure = tempfail gives 454 4.7.0 with
        no password check and the session goes on; on_failure = allow checks the password as usual."""
        redis = start_redis(self)
        for mode in ("tempfail", "allow"):
            if mode == "allow":
                redis.start()
            self.start(limits={"auth_failure_rate": "2/1m"}, redis=redis, on_failure=mode)
            c = self.session("sub", source="127.0.0.6")
            redis.stop()
            if mode == "tempfail":
                r = self.login(c, "alice", expect=454)
                self.assertEqual(enhanced(r), "4.7.0", r)
                self.assertIsNone(re.search(rb"client=127\.0\.0\.6:\d+ auth=alice", self.gate.log()))
                self.assertEqual(c.cmd("NOOP").code, 250, "the session goes on")
            else:
                self.login(c, "alice")
            self.gate.proc.stop()

    def test_cut_off_holds_across_connections(self):
        self.check_cut_off_holds()

    def test_cut_off_holds_across_connections_redis(self):
        self.check_cut_off_holds(redis=start_redis(self))

    def test_xclient_login_to_backend(self):
        self.start(backend={"forward_client": "xclient"})
        c = self.session("sub", source="127.0.0.2")
        self.login(c, "alice")
        msg = self.deliver(c, "xclient login")
        m = self.assert_authenticated_delivery("xclient login", msg, "alice")
        xc = attrs_of(m["env"], "XCLIENT")
        self.assertEqual(len(xc), 1, m["env"])
        self.assertEqual(xc[0].get("LOGIN"), "alice", m["env"])
        # RFC 3848's name; Postfix's XCLIENT only takes SMTP or ESMTP there (see the Postfix test)
        self.assertIn(xc[0].get("PROTO"), ("ESMTPSA", "ESMTP"), m["env"])
        self.assertEqual(xc[0].get("ADDR"), "127.0.0.2", m["env"])
        # not authenticated: ESMTPS and no LOGIN
        c = self.session("mx", source="127.0.0.3")
        msg = self.deliver(c, "xclient anonymous")
        m = self.stored("xclient anonymous")
        xc = attrs_of(m["env"], "XCLIENT")
        self.assertEqual(len(xc), 1, m["env"])
        self.assertIn(xc[0].get("PROTO"), ("ESMTPS", "ESMTP"), m["env"])
        self.assertNotIn("LOGIN", xc[0], m["env"])

    def test_xclient_survives_a_hostile_helo(self):
        """A HELO that xtext-encodes past 512 octets must not make mxgate drop XCLIENT (and the login)."""
        self.start(backend={"forward_client": "xclient"})
        c = self.session("sub", source="127.0.0.2", ehlo=False)
        self.assertEqual(c.cmd("EHLO " + "+" * 200).code, 250)
        self.login(c, "alice")
        msg = self.deliver(c, "hostile helo")
        m = self.assert_authenticated_delivery("hostile helo", msg, "alice")
        xc = attrs_of(m["env"], "XCLIENT")
        self.assertEqual(len(xc), 1, "no XCLIENT for this message: the backend took mxgate for the "
                         "client:\n%s" % m["env"].decode("utf-8", "replace"))
        self.assertEqual(xc[0].get("ADDR"), "127.0.0.2", m["env"])
        self.assertEqual(xc[0].get("LOGIN"), "alice", m["env"])

    def test_xclient_login_to_postfix(self):
        why = postfix_skip_reason()
        if why:
            self.skipTest(why)
        pf = start_postfix_smtpd(self)
        self.start(backend={"address": "127.0.0.1:%d" % pf.port, "forward_client": "xclient"})
        # authenticated over STARTTLS: Postfix takes the client and the SASL login from XCLIENT
        c = self.session("sub", source="127.0.0.2")
        self.login(c, "bob")
        self.postfix_sees(pf, c, r"client=\S*\[127\.0\.0\.2\], sasl_method=\S+, sasl_username=bob$")
        # not authenticated, over TLS: still the real client
        c = self.session("mx", source="127.0.0.3")
        self.postfix_sees(pf, c, r"client=\S*\[127\.0\.0\.3\]$")
        # (Postfix's "xclient=0/1" counter is no verdict: a successful XCLIENT
        # restarts its session; the client= lines above are.)
        log = pf.log().decode("utf-8", "replace")
        self.assertNotRegex(log, r"Bad PROTO syntax|XCLIENT.*not", "Postfix refused an XCLIENT:\n" + log[-3000:])
        self.assertNotRegex(self.gate.log(), rb"XCLIENT refused")

    def postfix_sees(self, pf, c, pattern):
        """Delivers one message through c; Postfix's "QUEUEID: client=..." line must match pattern."""
        msg = make_message(subject="pf %s" % os.urandom(4).hex())
        r = self.send_message(c, FROM, [TO], dot_stuff(msg))
        qid = re.search(rb"queued as ([0-9A-Za-z]+)", r.raw)
        self.assertTrue(qid, r)
        qid = qid.group(1).decode()
        deadline = time.monotonic() + 10 * SCALE
        while True:
            log = pf.log().decode("utf-8", "replace")
            line = re.search(r"(?m)%s: (client=.*)$" % qid, log)
            if line:
                self.assertRegex(line.group(1), pattern, "Postfix's view of the client; gate log:\n%s"
                                 % self.gate.log()[-1500:].decode("utf-8", "replace"))
                return
            if time.monotonic() > deadline:
                self.fail("no Postfix line for %s:\n%s" % (qid, log[-3000:]))
            time.sleep(0.1)

    def test_slow_check_runs_off_the_ring(self):
        """A yescrypt check of ~0.5 s: NOOP on another connection is answered meanwhile."""
        slow_hash = make_hash("yescrypt", "slow-pw", cost=10)
        users = dict(HASHES, slow=slow_hash)
        self.start(users=users, server={"workers": 1})
        other = self.session("sub")
        c = self.session("sub")
        for pw, want in (("slow-pw", 235), ("wrong", 535)):
            with self.subTest(result=want):
                if want == 535:
                    c = self.session("sub")
                verdict = {}

                def wait_verdict(c=c):
                    try:
                        verdict["reply"] = c.reply(timeout=30)
                    except Exception as e:  # reported below
                        verdict["reply"] = e
                    verdict["t"] = time.monotonic()

                t0 = time.monotonic()
                c.send("AUTH PLAIN %s\r\n" % plain("slow", pw))
                th = threading.Thread(target=wait_verdict, daemon=True)
                th.start()
                noops = []
                # NOOPs on the other connection while the check runs
                while th.is_alive() and time.monotonic() - t0 < 30 * SCALE:
                    t = time.monotonic()
                    self.assertEqual(other.cmd("NOOP").code, 250)
                    noops.append(time.monotonic() - t)
                    time.sleep(0.02)
                th.join(30 * SCALE)
                r = verdict.get("reply")
                self.assertTrue(hasattr(r, "code"), "no AUTH verdict: %r" % r)
                self.assertEqual(r.code, want, r)
                check = verdict["t"] - t0
                self.assertGreater(check, 0.15, "the slow hash was not slow (%.3fs)" % check)
                self.assertGreaterEqual(len(noops), 3, noops)
                self.assertLess(max(noops), check / 2,
                                "NOOP waited for the password check: %.3fs of %.3fs" % (max(noops), check))
        wait_log(self.gate, rb"auth=slow ok")
        wait_log(self.gate, rb"auth=slow failed")

    def test_full_check_queue_gives_454(self):
        """More AUTHs at once than the password-check queue holds (1024): the overflow gets 454 4.7.0 at once (logged where it is sent), and mxgate still stops cleanly with the queue full."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < 1400:
            self.skipTest("needs 1,400 file descriptors (hard limit %d)" % hard)
        if soft != resource.RLIM_INFINITY and soft < 1400:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 4096, hard))
        slow_hash = make_hash("yescrypt", "slow-pw", cost=8)  # ~0.14 s a check, 2 threads
        self.start(users=dict(HASHES, slow=slow_hash), server={"workers": 1, "drain_timeout": "2s"})
        load = Proc(self, "mxload", [binary("mxload"), "--target", "127.0.0.1:%d" % self.port,
                                     "--tls", "starttls", "--auth", "slow:slow-pw",
                                     "--connections", "1200", "--messages", "1200", "--timeout", "300s"])
        wait_log(self.gate, rb"cannot check a password now", timeout=60)
        self.assertTrue(self.gate.proc.alive())
        # the clients waiting for their checks are not waited for
        load.signal(signal.SIGKILL)
        load.wait(10)
        t0 = time.monotonic()
        self.gate.proc.signal(signal.SIGTERM)
        self.assertEqual(self.gate.proc.wait(30), 0)
        self.assertLess(time.monotonic() - t0, 15 * SCALE)

    def test_session_closed_during_check(self):
        slow_hash = make_hash("yescrypt", "slow-pw", cost=9)
        self.start(users=dict(HASHES, slow=slow_hash), server={"workers": 1})
        for i in range(3):
            c = self.session("sub")
            c.send("AUTH PLAIN %s\r\nMAIL FROM:<%s>\r\n" % (plain("slow", "slow-pw"), FROM))
            c.close()
        time.sleep(0.8 * SCALE)
        self.assertTrue(self.gate.proc.alive())
        c = self.session("sub")
        self.login(c, "alice")
        msg = self.deliver(c, "after closed checks")
        self.assert_authenticated_delivery("after closed checks", msg, "alice")

    def test_sighup_reloads_users(self):
        self.start()
        before = self.session("sub")
        new = dict(HASHES, alice=make_hash("sha512crypt", "alice-new"), dave=make_hash("bcrypt", "dave-pw"))
        write_users(self, new)
        self.gate.reload()
        wait_log(self.gate, rb"reloaded ")
        c = self.session("sub")
        self.login(c, "alice", "alice-pw", expect=535)
        self.login(c, "alice", "alice-new")
        c = self.session("smtps")
        self.login(c, "dave", "dave-pw")
        # a broken users file: the running table stays
        with open(self.users_path, "w") as f:
            f.write("alice:$1$md5$notsupported\n")
        self.gate.reload()
        m = wait_log(self.gate, rb"reload failed, the running configuration stays: ([^\n]*)")
        self.assertIn(self.gate.config_path.encode(), m[0])
        self.assertIn(self.users_path.encode() + b":1:", m[0])
        c = self.session("sub")
        self.login(c, "alice", "alice-new")
        # the session opened before the reloads can still authenticate (with either table)
        r = before.cmd("AUTH PLAIN " + plain("bob", PASSWORDS["bob"]))
        self.assertEqual(r.code, 235, r)


# ====================================================================== config errors

class AuthConfigErrors(MxTestCase):
    def run_t(self, cfg):
        return check_config_file(self, cfg)

    line_of = staticmethod(config_line)

    def expect(self, cfg, section, key, want=None):
        rc, out, text, path = self.run_t(cfg)
        self.assertEqual(rc, 1, "accepted:\n%s\n%s" % (text, out))
        line = self.line_of(text, section, key)
        self.assertIn("%s:%d: " % (path, line), out, "wanted line %d ([%s] %s):\n%s\n%s"
                      % (line, section, key, out, text))
        if want:
            self.assertRegex(out, want)
        return out

    def cfg(self, users_text=None, listener=None, auth=None):
        lst = {"mode": "submission", "tls": "starttls"}
        lst.update(listener or {})
        cfg = gate_config(2587, ["127.0.0.1:2600"], listener=lst)
        cfg["tls"] = tls_section()
        if users_text is not None or auth is not None:
            a = {}
            if users_text is not None:
                path = os.path.join(self.tmpdir, "users")
                with open(path, "w") as f:
                    f.write(users_text)
                a["users"] = path
            a.update(auth or {})
            cfg["auth"] = a
        return cfg

    def good_users(self):
        return "alice:%s\nbob:%s\n# a comment\n\ncarol:%s\n" % (HASHES["alice"], HASHES["bob"], HASHES["carol"])

    def test_valid(self):
        rc, out, text, _ = self.run_t(self.cfg(self.good_users(), auth={"mechanisms": "PLAIN, LOGIN"}))
        self.assertEqual(rc, 0, text + out)
        cfg = self.cfg(self.good_users(), listener={"tls": "implicit"})
        cfg["limits"] = {"auth_failure_rate": "5/10m"}
        rc, out, text, _ = self.run_t(cfg)
        self.assertEqual(rc, 0, text + out)

    def test_submission_without_auth_or_tls(self):
        self.expect(self.cfg(), "listener in", "mode", r"\[auth\]")
        self.expect(self.cfg(self.good_users(), listener={"tls": "none"}), "listener in", "mode", r"tls")
        cfg = self.cfg(self.good_users(), listener={"tls": "none"})
        del cfg["listener in"]["tls"]
        self.expect(cfg, "listener in", "mode", r"tls")

    def test_auth_section_errors(self):
        self.expect(self.cfg(auth={"mechanisms": "PLAIN"}), "auth", None, r"users")
        self.expect(self.cfg(self.good_users(), auth={"mechanisms": "CRAM-MD5"}), "auth", "mechanisms",
                    r"CRAM-MD5")
        self.expect(self.cfg(self.good_users(), auth={"mechanisms": ""}), "auth", "mechanisms")
        self.expect(self.cfg(self.good_users(), auth={"realm": "x"}), "auth", "realm", r"unknown key")

    def test_users_file_errors(self):
        cases = [
            ("no colon", "alice %s\n" % HASHES["alice"], 1),
            ("empty name", ":%s\n" % HASHES["alice"], 1),
            ("no hash", "alice:\n", 1),
            ("md5-crypt", "bob:%s\nalice:$1$abcdefgh$0123456789012345678901\n" % HASHES["bob"], 2),
            ("plain text password", "alice:secret\n", 1),
            ("truncated yescrypt", "alice:%s\n" % HASHES["alice"][:-5], 1),
            ("truncated sha512", "# c\nbob:%s\n" % HASHES["bob"][:-1], 2),
            ("duplicate", "alice:%s\nbob:%s\nalice:%s\n" % (HASHES["alice"], HASHES["bob"], HASHES["alice"]), 3),
            ("space in name", "al ice:%s\n" % HASHES["alice"], 1),
        ]
        for what, text, bad_line in cases:
            with self.subTest(case=what):
                out = self.expect(self.cfg(text), "auth", "users")
                self.assertIn(os.path.join(self.tmpdir, "users") + ":%d:" % bad_line, out, what)
        cfg = self.cfg(auth={"users": os.path.join(self.tmpdir, "missing-users")})
        out = self.expect(cfg, "auth", "users", r"missing-users")
        cfg = self.cfg(auth={"users": self.tmpdir})
        self.expect(cfg, "auth", "users")


if __name__ == "__main__":
    unittest.main()
