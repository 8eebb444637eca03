"""
PIPELINING towards the backend (RFC 2920): the RCPTs and DATA a client
pipelines behind MAIL leave for the backend with MAIL, in one write, when
the backend offers PIPELINING and nothing about them is left to decide;
the client's replies are the same as when the commands go one at a time,
whatever the backend answers.

The backend here holds its reply to MAIL until the group's DATA has come
(or half a second has passed), and records which lines came meanwhile.
"""

import time

from harness import (MxTestCase, SCALE, dot_stuff, free_port, gate_config, make_message,
                     postfix_skip_reason, redis_section, start_mxgate, start_postfix_smtpd,
                     start_redis, ThreadedBackend, wait_until)

HOLD_S = 0.5

MAIL_REFUSED = b"550 5.7.1 sender refused by the backend\r\n"
RCPT_REFUSED = b"550 5.1.1 no such user here\r\n"


class HoldingBackend(ThreadedBackend):
    """
    An SMTP server that answers MAIL only after the rest of a pipelined
    group (self.ahead: per transaction, the lines that came while MAIL
    waited). fault, for the first transaction only:
      "refuse_mail": 550 to MAIL, 503 to its RCPTs and DATA;
      "refuse_rcpt": 550 to every RCPT, 554 to DATA;
      "bad_354": 550 to every RCPT, yet 354 to DATA (a broken backend);
      "refuse_mail_354": 550 to MAIL, 503 to its RCPTs, yet 354 to DATA;
      "data_250": 250 to DATA (a broken backend, or replies out of step);
    and for the first XFORWARD: "refuse_xforward" answers it with 550,
    "close_at_xforward" closes the connection instead.
    pipelining=False: PIPELINING is not offered.
    """

    def __init__(self, test, fault=None, pipelining=True, xforward=False):
        self.fault = fault
        self.pipelining = pipelining
        self.xforward = xforward
        self.mail_with_xforward = []   # per XFORWARD: had MAIL come in the same write?
        self.connections = 0
        self.transactions = 0
        self.ahead = []
        self.commands = []
        self.messages = []       # (rcpts, data) of each message taken
        self.bytes_after_bad_354 = None
        super().__init__(test)

    def accepted(self, sock):
        self.connections += 1
        return ()

    def reply_for(self, verb, faulty, state):
        if verb in (b"EHLO", b"LHLO"):
            return (b"250-holding.backend\r\n" + (b"250-PIPELINING\r\n" if self.pipelining else b"") +
                    (b"250-XFORWARD NAME ADDR PROTO HELO\r\n" if self.xforward else b"") +
                    b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
        if verb == b"MAIL":
            if faulty in ("refuse_mail", "refuse_mail_354"):
                state["mail_ok"] = False
                return MAIL_REFUSED
            state["mail_ok"] = True
            state["rcpts"] = []
            return b"250 2.1.0 ok\r\n"
        if verb == b"RCPT":
            if not state.get("mail_ok"):
                return b"503 5.5.1 need MAIL\r\n"
            if faulty in ("refuse_rcpt", "bad_354"):
                return RCPT_REFUSED
            state["rcpts"].append(state["line"].split(b":", 1)[1].strip())
            return b"250 2.1.5 ok\r\n"
        if verb == b"DATA":
            if faulty == "data_250":
                return b"250 2.0.0 ok\r\n"
            if faulty in ("bad_354", "refuse_mail_354"):
                return b"354 go ahead anyway\r\n"
            if not state.get("mail_ok"):
                return b"503 5.5.1 need MAIL\r\n"
            if not state.get("rcpts"):
                return b"554 5.5.1 no valid recipients\r\n"
            return b"354 go ahead\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 bye\r\n"
        if verb == b"RSET":
            state["mail_ok"] = False
        return b"250 2.0.0 ok\r\n"

    def serve(self, s):
        s.settimeout(0.05)
        state = {}
        buf = b""
        try:
            s.sendall(b"220 holding.backend ESMTP\r\n")
            while not self.stop.is_set():
                while b"\n" not in buf:
                    chunk = self.recv(s)
                    if chunk is None:
                        if self.stop.is_set():
                            return
                        continue
                    if not chunk:
                        return
                    buf += chunk
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r")
                verb = line.split(b" ")[0].upper()
                with self.lock:
                    self.commands.append(line)
                faulty = None
                group = [line]
                if verb == b"XFORWARD":
                    with self.lock:
                        self.mail_with_xforward.append(buf.upper().startswith(b"MAIL FROM:"))
                        first = len(self.mail_with_xforward) == 1
                    if first and self.fault == "close_at_xforward":
                        s.close()
                        return
                    if first and self.fault == "refuse_xforward":
                        s.sendall(b"550 5.7.0 XFORWARD not allowed here\r\n")
                        continue
                if verb == b"MAIL":
                    with self.lock:
                        self.transactions += 1
                        faulty = self.fault if self.transactions == 1 else None
                    # hold the reply: what else comes before it?
                    deadline = time.monotonic() + HOLD_S
                    closed = False
                    while b"DATA\r\n" not in buf and time.monotonic() < deadline and not closed:
                        chunk = self.recv(s)
                        closed = chunk == b""
                        if chunk:
                            buf += chunk
                    while b"\n" in buf:
                        more, rest = buf.split(b"\n", 1)
                        more = more.rstrip(b"\r")
                        if more.split(b" ")[0].upper() not in (b"RCPT", b"DATA"):
                            break
                        group.append(more)
                        buf = rest
                    with self.lock:
                        self.ahead.append(group[1:])
                        self.commands.extend(group[1:])
                    if closed:
                        return
                out = b""
                for ln in group:
                    state["line"] = ln
                    v = ln.split(b" ")[0].upper()
                    out += self.reply_for(v, faulty, state)
                    if v == b"QUIT":
                        s.sendall(out)
                        return
                s.sendall(out)
                if out.endswith(b"354 go ahead anyway\r\n"):
                    # mxgate must close without a byte of message text
                    got = self.drain(s, buf)
                    with self.lock:
                        self.bytes_after_bad_354 = got
                    return
                if out.endswith(b"354 go ahead\r\n"):
                    data, buf = self.read_data(s, buf)
                    if data is None:
                        return
                    with self.lock:
                        self.messages.append((list(state["rcpts"]), data))
                    s.sendall(b"250 2.0.0 Ok: queued as HOLD%d\r\n" % len(self.messages))
        except OSError:
            return

    def read_data(self, s, buf):
        deadline = time.monotonic() + 10 * SCALE
        while b"\r\n.\r\n" not in buf and time.monotonic() < deadline:
            chunk = self.recv(s)
            if chunk == b"":
                return None, b""
            if chunk:
                buf += chunk
        i = buf.find(b"\r\n.\r\n")
        if i < 0:
            return None, b""
        return buf[:i + 2], buf[i + 5:]

    def drain(self, s, buf):
        got = len(buf)
        deadline = time.monotonic() + 5 * SCALE
        while time.monotonic() < deadline:
            chunk = self.recv(s)
            if chunk == b"":
                return got
            if chunk:
                got += len(chunk)
        return -1   # still open


class Pipelining(MxTestCase):
    def gate(self, backend, relay_domains="example.test", extra=None, **backend_keys):
        """mxgate in front of backend (anything with a port), with more [backend] keys."""
        port = free_port()
        cfg = gate_config(port, [dict(address=backend.port, **backend_keys)], relay_domains=relay_domains)
        for k, v in (extra or {}).items():
            cfg[k] = v
        return start_mxgate(self, cfg)

    def group(self, c, rcpts, frm="a@example.test"):
        """Sends MAIL, RCPT x n and DATA in one write; their replies."""
        c.send(b"".join([b"MAIL FROM:<%s>\r\n" % frm.encode()] +
                        [b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts] + [b"DATA\r\n"]))
        return c.replies(len(rcpts) + 2, timeout=10 * SCALE)

    def finish(self, c, body=b"pipelined\r\n"):
        msg = make_message(subject="pipelined", body=body)
        c.send(dot_stuff(msg))
        return c.reply(timeout=10 * SCALE), msg

    def session(self, backend, **gate_kw):
        """A client session (EHLO done) with an mxgate in front of backend."""
        return self.open_session(self.gate(backend, **gate_kw))

    def send_group(self, c, rcpts, codes):
        """group(), with the reply codes it must get."""
        rs = self.group(c, rcpts)
        self.assertEqual([r.code for r in rs], codes, rs)
        return rs

    def deliver(self, c, rcpts):
        """A pipelined group every part of which is accepted, then its message, accepted too."""
        self.send_group(c, rcpts, [250] * (len(rcpts) + 1) + [354])
        r, msg = self.finish(c)
        self.assertEqual(r.code, 250, r)
        return r, msg

    def test_group_goes_in_one_write(self):
        be = HoldingBackend(self)
        c = self.session(be)
        t0 = time.monotonic()
        rs = self.send_group(c, ["b@example.test", "c@example.test"], [250, 250, 250, 354])
        r, msg = self.finish(c)
        self.assertEqual(r.code, 250, r)
        self.assertIn(b"queued as HOLD1", r.raw)
        # the RCPTs and DATA reached the backend before it answered MAIL,
        # so the group cost one hold, not one per command
        self.assertEqual(be.ahead, [[b"RCPT TO:<b@example.test>", b"RCPT TO:<c@example.test>", b"DATA"]])
        self.assertLess(time.monotonic() - t0, 2 * HOLD_S + 1.5 * SCALE)
        rcpts, data = be.messages[0]
        self.assertEqual(rcpts, [b"<b@example.test>", b"<c@example.test>"])
        self.assertTrue(data.endswith(msg), data[-200:])
        # a second message on the same session and link
        self.deliver(c, ["d@example.test"])
        self.assertEqual(be.ahead[1], [b"RCPT TO:<d@example.test>", b"DATA"])
        self.assertEqual(be.connections, 1)
        self.assertEqual(c.cmd("QUIT").code, 221)

    def test_backend_without_pipelining_gets_one_at_a_time(self):
        be = HoldingBackend(self, pipelining=False)
        c = self.session(be)
        self.deliver(c, ["b@example.test"])
        self.assertEqual(be.ahead, [[]])
        self.assertEqual(len(be.messages), 1)

    def test_refused_mail(self):
        """MAIL refused there: the client hears it, and 503 for the rest, as one at a time."""
        be = HoldingBackend(self, fault="refuse_mail")
        c = self.session(be)
        rs = self.send_group(c, ["b@example.test", "c@example.test"], [550, 503, 503, 503])
        self.assertEqual(rs[0].raw, MAIL_REFUSED)
        self.assertEqual(len(be.ahead[0]), 3)
        # the link takes the replies it is owed, then RSET, and serves again
        wait_until(lambda: b"RSET" in be.commands, 10 * SCALE, what="RSET after the replies due")
        self.deliver(c, ["d@example.test"])
        self.assertEqual([m[0] for m in be.messages], [[b"<d@example.test>"]])
        self.assertEqual(be.connections, 1)

    def test_refused_recipients(self):
        """Every RCPT refused there: their replies relayed, 503 to DATA, the backend's 554 dropped."""
        be = HoldingBackend(self, fault="refuse_rcpt")
        c = self.session(be)
        rs = self.send_group(c, ["b@example.test", "c@example.test"], [250, 550, 550, 503])
        self.assertEqual(rs[1].raw, RCPT_REFUSED)
        self.assertIn(b"5.5.1", rs[3].raw)
        # the transaction goes on: the backend's 554 to that DATA answered
        # nothing, so the next RCPT gets its own reply
        self.assertEqual(c.cmd("RCPT TO:<e@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        r, _ = self.finish(c)
        self.assertEqual(r.code, 250, r)
        self.assertEqual([m[0] for m in be.messages], [[b"<e@example.test>"]])
        self.assertEqual(be.connections, 1)

    def check_unwanted_354(self, fault, codes):
        """A backend that says 354 to a DATA nobody wants gets no message text: the link closes."""
        be = HoldingBackend(self, fault=fault)
        c = self.session(be)
        self.send_group(c, ["b@example.test"], codes)
        wait_until(lambda: be.bytes_after_bad_354 is not None, 10 * SCALE, what="the link closed")
        self.assertEqual(be.bytes_after_bad_354, 0)
        self.assertNotIn(b"RSET", be.commands)
        # the session goes on, on a new link
        self.assertEqual(c.cmd("RSET").code, 250)
        self.deliver(c, ["d@example.test"])
        self.assertEqual([m[0] for m in be.messages], [[b"<d@example.test>"]])
        self.assertEqual(be.connections, 2)

    def test_unwanted_354_closes_the_link(self):
        """Every RCPT refused, the DATA sent ahead answered 354 all the same."""
        self.check_unwanted_354("bad_354", [250, 550, 503])

    def test_unwanted_354_after_release_closes_the_link(self):
        """MAIL refused, so the link was released with the group's replies due; one is a 354."""
        self.check_unwanted_354("refuse_mail_354", [550, 503, 503])

    def test_stops_at_a_recipient_refused_here(self):
        """A recipient mxgate refuses never reaches the backend; the group goes ahead up to it."""
        be = HoldingBackend(self)
        c = self.session(be)
        self.send_group(c, ["b@example.test", "x@elsewhere.test", "c@example.test"],
                        [250, 250, 554, 250, 354])
        r, _ = self.finish(c)
        self.assertEqual(r.code, 250, r)
        self.assertEqual(be.ahead, [[b"RCPT TO:<b@example.test>"]])
        self.assertEqual(be.messages[0][0], [b"<b@example.test>", b"<c@example.test>"])
        self.assertNotIn(b"elsewhere", b"\n".join(be.commands))

    def test_recipient_rate_keeps_checked_recipients_back(self):
        """With a recipient rate, only the recipient MAIL paid for goes ahead; the rate still holds."""
        be = HoldingBackend(self)
        c = self.session(be, extra={"limits": {"recipient_rate": "2/60s"}})
        self.send_group(c, ["b@example.test", "c@example.test", "d@example.test"],
                        [250, 250, 250, 451, 354])
        r, _ = self.finish(c)
        self.assertEqual(r.code, 250, r)
        self.assertEqual(be.ahead, [[b"RCPT TO:<b@example.test>"]])
        self.assertEqual(be.messages[0][0], [b"<b@example.test>", b"<c@example.test>"])
        self.assertNotIn(b"RCPT TO:<d@example.test>", be.commands)

    def test_client_gone_with_replies_due(self):
        """The client leaves while the group's replies are due: nothing is delivered, mxgate goes on."""
        be = HoldingBackend(self)
        gate = self.gate(be)
        c = self.open_session(gate)
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        c.close()
        wait_until(lambda: len(be.ahead) == 1, 10 * SCALE, what="the group at the backend")
        time.sleep(HOLD_S + 0.3)
        c = self.open_session(gate)
        self.deliver(c, ["c@example.test"])
        self.assertEqual([m[0] for m in be.messages], [[b"<c@example.test>"]])

    def test_xforward_goes_with_mail(self):
        """XFORWARD's reply only feeds a log line: MAIL leaves with it, also one command at a time."""
        be = HoldingBackend(self, xforward=True)
        c = self.session(be, forward_client="xforward")
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        self.assertEqual(c.cmd("DATA").code, 354)
        r, _ = self.finish(c)
        self.assertEqual(r.code, 250, r)
        self.deliver(c, ["c@example.test"])
        self.assertEqual(be.mail_with_xforward, [True, True])
        self.assertEqual(be.ahead, [[], [b"RCPT TO:<c@example.test>", b"DATA"]])
        self.assertEqual([m[0] for m in be.messages], [[b"<b@example.test>"], [b"<c@example.test>"]])
        xf = [x for x in be.commands if x.startswith(b"XFORWARD")]
        self.assertEqual(len(xf), 2)
        self.assertIn(b"ADDR=127.0.0.1", xf[0])

    def test_xforward_refused_message_still_goes(self):
        """XFORWARD refused (sent with MAIL): logged, and the message goes on the same link."""
        be = HoldingBackend(self, xforward=True, fault="refuse_xforward")
        gate = self.gate(be, forward_client="xforward")
        c = self.open_session(gate)
        self.deliver(c, ["b@example.test"])
        self.assertEqual([m[0] for m in be.messages], [[b"<b@example.test>"]])
        self.assertEqual(be.connections, 1)
        wait_until(lambda: b"XFORWARD refused with 550" in gate.log(), 5 * SCALE, what="the warning")

    def test_xforward_link_lost_tries_another(self):
        """The link dies at XFORWARD (MAIL and the group on its heels): a new link takes them all."""
        be = HoldingBackend(self, xforward=True, fault="close_at_xforward")
        c = self.session(be, forward_client="xforward")
        self.deliver(c, ["b@example.test"])
        self.assertEqual([m[0] for m in be.messages], [[b"<b@example.test>"]])
        self.assertEqual(be.connections, 2)
        self.assertEqual(be.ahead, [[b"RCPT TO:<b@example.test>", b"DATA"]])

    def test_data_answered_250_closes_the_link(self):
        """250 to DATA (a backend out of step) is no go-ahead: 451 to the client, and the link goes."""
        be = HoldingBackend(self, fault="data_250")
        c = self.session(be)
        rs = self.send_group(c, ["b@example.test"], [250, 250, 451])
        self.assertIn(b"4.4.2", rs[2].raw)
        self.deliver(c, ["d@example.test"])
        self.assertEqual([m[0] for m in be.messages], [[b"<d@example.test>"]])
        self.assertEqual(be.connections, 2)

    def test_limits_in_redis_mail_waits_for_the_store(self):
        """
        With limits in Redis, MAIL followed by a pipelined RCPT waits for the
        store's answer, then leaves with the group; a refusal asks no backend.
        """
        be = HoldingBackend(self)
        redis = start_redis(self)
        c = self.session(be, extra={"redis": redis_section(redis),
                                    "limits": {"message_rate": "2/60s", "recipient_rate": "100/60s"}})
        for rcpt in ["b@example.test", "c@example.test"]:
            self.deliver(c, [rcpt])
        # the second MAIL found a warm link at once, yet its RCPT (paid for
        # at MAIL) and DATA went with it
        self.assertEqual(be.ahead[1], [b"RCPT TO:<c@example.test>", b"DATA"])
        # over the message rate: refused, and the backend never hears of it
        rs = self.send_group(c, ["d@example.test"], [451, 503, 503])
        self.assertIn(b"4.7.1", rs[0].raw)
        self.assertEqual(be.transactions, 2)
        self.assertNotIn(b"RCPT TO:<d@example.test>", be.commands)
        self.assertEqual([m[0] for m in be.messages], [[b"<b@example.test>"], [b"<c@example.test>"]])

    def test_postfix_backend(self):
        """Postfix's smtpd takes the group (XFORWARD, MAIL, RCPTs, DATA) without a pipelining complaint."""
        why = postfix_skip_reason()
        if why:
            self.skipTest(why)
        pf = start_postfix_smtpd(self, extra_main={"smtpd_relay_restrictions": "reject_unauth_destination"})
        c = self.session(pf, relay_domains="*", forward_client="xforward")
        for n in range(2):
            rs = self.send_group(c, ["b%d@example.test" % n, "x@other.test", "c%d@example.test" % n],
                                 [250, 250, 554, 250, 354])
            self.assertIn(b"Relay access denied", rs[2].raw)     # Postfix's own words
            r, _ = self.finish(c)
            self.assertEqual(r.code, 250, r)
            self.assertRegex(r.raw, rb"queued as [0-9A-Za-z]+")
        self.assertEqual(c.cmd("QUIT").code, 221)
        # two messages queued, each with its two accepted recipients
        wait_until(lambda: pf.log().count(b"nrcpt=2 (queue active)") == 2, 10 * SCALE,
                   what="two messages of two recipients in Postfix's queue")
        log = pf.log().decode("utf-8", "replace")
        self.assertNotIn("pipelining", log.lower(), log[-2000:])
        self.assertEqual(log.count(": client="), 2, log[-2000:])
