"""
CHUNKING towards the backend (RFC 3030): when the backend offers it,
mxgate answers the client's DATA with its own 354 and holds a small
message to its end; one without a stuffed dot leaves as a single
"BDAT n LAST" (no DATA, no 354 on the backend link). Any other message
goes by DATA after all, and what was held follows the backend's 354. A
message refused for its content reaches no backend.

The backend here records every command and chunk, and can refuse or
drop the link at chosen points.
"""

import time

from harness import (MxTestCase, RawSMTP, SCALE, dot_stuff, free_port, gate_config, make_message,
                     start_mxgate, start_mxsink, ThreadedBackend, wait_until)

CAPS = b"250-recording.backend\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n"


class RecordingBackend(ThreadedBackend):
    """
    An SMTP server that records, per connection, each command line and
    each message (how it came: "BDAT" or "DATA", and its octets as the
    message, un-stuffed). fault, for the first transaction that has one:
      "refuse_data": 554 to DATA;
      "refuse_bdat": 552 after the octets of BDAT LAST;
      "close_after_rcpt": closes the link 0.3 s after its RCPT reply;
      "close_at_data": closes the link when DATA comes;
      "data_250": 250 to DATA (out of step: a broken backend).
    chunking=False: CHUNKING is not offered.
    """

    def __init__(self, test, fault=None, chunking=True):
        self.fault = fault
        self.chunking = chunking
        self.connections = 0
        self.commands = []        # every command line, all connections
        self.messages = []        # (how, rcpts, message octets)
        self.fault_used = False
        super().__init__(test)

    def accepted(self, sock):
        self.connections += 1
        return ()

    def take_fault(self, name):
        with self.lock:
            if self.fault == name and not self.fault_used:
                self.fault_used = True
                return True
        return False

    def read_until(self, s, buf, pred):
        deadline = time.monotonic() + 10 * SCALE
        while not pred(buf):
            if time.monotonic() > deadline or self.stop.is_set():
                return None
            chunk = self.recv(s)
            if chunk == b"":
                return None
            if chunk:
                buf += chunk
        return buf

    def serve(self, s):
        s.settimeout(0.05)
        buf = b""
        rcpts = []
        try:
            s.sendall(b"220 recording.backend ESMTP\r\n")
            while True:
                buf = self.read_until(s, buf, lambda b: b"\n" in b)
                if buf is None:
                    return
                line, buf = buf.split(b"\n", 1)
                line = line.rstrip(b"\r")
                verb = line.split(b" ")[0].upper()
                with self.lock:
                    self.commands.append(line)
                if verb == b"EHLO":
                    s.sendall(CAPS.replace(b"250-PIPELINING", b"250-CHUNKING\r\n250-PIPELINING")
                              if self.chunking else CAPS)
                elif verb == b"MAIL":
                    rcpts = []
                    s.sendall(b"250 2.1.0 ok\r\n")
                elif verb == b"RCPT":
                    rcpts.append(line.split(b":", 1)[1].strip())
                    s.sendall(b"250 2.1.5 ok\r\n")
                    if self.take_fault("close_after_rcpt"):
                        time.sleep(0.3)
                        s.close()
                        return
                elif verb == b"DATA":
                    if self.take_fault("close_at_data"):
                        s.close()
                        return
                    if self.take_fault("data_250"):
                        s.sendall(b"250 2.0.0 ok\r\n")
                        continue
                    if self.take_fault("refuse_data"):
                        s.sendall(b"554 5.7.1 no DATA for you\r\n")
                        continue
                    s.sendall(b"354 go ahead\r\n")
                    buf = self.read_until(s, buf, lambda b: b"\r\n.\r\n" in b)
                    if buf is None:
                        return
                    i = buf.find(b"\r\n.\r\n")
                    data, buf = buf[:i + 2], buf[i + 5:]
                    data = b"\r\n".join(ln[1:] if ln.startswith(b".") else ln
                                        for ln in data.split(b"\r\n"))
                    self.take_message(s, b"DATA", rcpts, data)
                elif verb == b"BDAT":
                    parts = line.split(b" ")
                    n = int(parts[1])
                    buf = self.read_until(s, buf, lambda b: len(b) >= n)
                    if buf is None:
                        return
                    data, buf = buf[:n], buf[n:]
                    if len(parts) < 3:
                        s.sendall(b"250 2.0.0 %d octets\r\n" % n)
                        continue
                    if self.take_fault("refuse_bdat"):
                        s.sendall(b"552 5.3.4 too much for us\r\n")
                        continue
                    self.take_message(s, b"BDAT", rcpts, data)
                elif verb == b"QUIT":
                    s.sendall(b"221 2.0.0 bye\r\n")
                    return
                else:
                    s.sendall(b"250 2.0.0 ok\r\n")
        except OSError:
            return

    def take_message(self, s, how, rcpts, data):
        with self.lock:
            self.messages.append((how, list(rcpts), data))
            n = len(self.messages)
        s.sendall(b"250 2.0.0 Ok: queued as REC%d\r\n" % n)

    def verbs(self):
        with self.lock:
            return [ln.split(b" ")[0].upper() for ln in self.commands]


def without_received(data):
    """The message without the Received: header mxgate put first."""
    assert data.startswith(b"Received:"), data[:100]
    i = data.find(b"\r\n", 0)
    while data[i + 2:i + 3] in (b" ", b"\t"):
        i = data.find(b"\r\n", i + 2)
    return data[i + 2:]


class Chunking(MxTestCase):
    def gate(self, backend, server=None, **backend_keys):
        port = free_port()
        cfg = gate_config(port, [dict(address=backend.port, **backend_keys)],
                          relay_domains="example.test", server=server)
        return start_mxgate(self, cfg)

    def session(self, backend, **kw):
        return self.open_session(self.gate(backend, **kw))

    def envelope(self, c, rcpts=("b@example.test",), mail_params=""):
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>" + mail_params).code, 250)
        for r in rcpts:
            self.assertEqual(c.cmd("RCPT TO:<%s>" % r).code, 250)
        r = c.cmd("DATA")
        self.assertEqual(r.code, 354, r)

    def end_reply(self, c, wire, code, mail_params=""):
        """MAIL, RCPT, DATA (354), then wire: the reply at the end of the data, which must be code."""
        self.envelope(c, mail_params=mail_params)
        c.send(wire)
        r = c.reply(timeout=10 * SCALE)
        self.assertEqual(r.code, code, r)
        return r

    def deliver(self, c, msg, how, be, pieces=1):
        """msg sent after DATA in pieces (with pauses); accepted, and it came to be by `how`."""
        self.envelope(c)
        wire = dot_stuff(msg)
        step = -(-len(wire) // pieces)
        for i in range(0, len(wire), step):
            c.send(wire[i:i + step])
            if pieces > 1:
                time.sleep(0.05)
        r = c.reply(timeout=20 * SCALE)
        self.assertEqual(r.code, 250, r)
        n = int(r.raw.split(b"REC")[1].split(b"\r")[0])
        got_how, rcpts, data = be.messages[n - 1]
        self.assertEqual(got_how, how)
        self.assertEqual(rcpts, [b"<b@example.test>"])
        self.assertEqual(without_received(data), msg)
        return r

    def test_small_message_goes_as_one_bdat(self):
        be = RecordingBackend(self)
        c = self.session(be)
        self.deliver(c, make_message(body=b"hello\r\n"), b"BDAT", be)
        self.deliver(c, make_message(body=b"dots.inside.a.line\r\nand at the end.\r\n"), b"BDAT", be)
        self.assertNotIn(b"DATA", be.verbs())
        bdat = [ln for ln in be.commands if ln.startswith(b"BDAT")]
        self.assertEqual(len(bdat), 2)
        self.assertTrue(all(ln.endswith(b" LAST") for ln in bdat), bdat)
        self.assertEqual(be.connections, 1)

    def test_empty_message(self):
        be = RecordingBackend(self)
        c = self.session(be)
        self.end_reply(c, b".\r\n", 250)
        how, _, data = be.messages[0]
        self.assertEqual(how, b"BDAT")
        self.assertEqual(without_received(data), b"")

    def test_message_in_pieces(self):
        """A small message that arrives in several receives is kept, then goes as one BDAT."""
        be = RecordingBackend(self)
        c = self.session(be)
        self.deliver(c, make_message(body=b"line\r\n" * 300), b"BDAT", be, pieces=5)

    def test_stuffed_dot_goes_by_data(self):
        """A line that starts with a dot: its wire form is not the message, so DATA carries it."""
        be = RecordingBackend(self)
        c = self.session(be)
        self.deliver(c, make_message(body=b"before\r\n.leading dot\r\n..two\r\nafter\r\n"), b"DATA", be)
        self.deliver(c, make_message(body=b"." * 900 + b"\r\n"), b"DATA", be, pieces=3)
        # and the link serves a held message again afterwards
        self.deliver(c, make_message(body=b"plain\r\n"), b"BDAT", be)
        self.assertEqual(be.connections, 1)

    def test_large_message_goes_by_data(self):
        """Past the hold limit, DATA; what was held goes first, then the rest streams."""
        be = RecordingBackend(self)
        c = self.session(be)
        body = b"".join(b"%06d the quick brown fox\r\n" % i for i in range(8000))
        self.deliver(c, make_message(body=body), b"DATA", be, pieces=4)
        # after a large message the next goes by DATA at once, whatever its size ...
        self.deliver(c, make_message(body=b"small\r\n"), b"DATA", be)
        # ... and after a small one, held again
        self.deliver(c, make_message(body=b"small\r\n"), b"BDAT", be)
        # a large one that comes whole in one write
        self.deliver(c, make_message(body=body), b"DATA", be)

    def test_declared_size_goes_by_data(self):
        """SIZE= past the hold limit: DATA from the start, even if less comes."""
        be = RecordingBackend(self)
        c = self.session(be)
        self.envelope(c, mail_params=" SIZE=100000")
        msg = make_message(body=b"small after all\r\n")
        c.send(dot_stuff(msg))
        r = c.reply(timeout=10 * SCALE)
        self.assertEqual(r.code, 250, r)
        self.assertEqual(be.messages[0][0], b"DATA")
        self.assertEqual(without_received(be.messages[0][2]), msg)

    def test_without_chunking_data(self):
        be = RecordingBackend(self, chunking=False)
        c = self.session(be)
        self.deliver(c, make_message(body=b"hello\r\n"), b"DATA", be)
        self.assertNotIn(b"BDAT", be.verbs())

    def test_refused_bdat_is_relayed(self):
        be = RecordingBackend(self, fault="refuse_bdat")
        c = self.session(be)
        r = self.end_reply(c, dot_stuff(make_message()), 552)
        self.assertIn(b"too much for us", r.raw)
        self.assertEqual(be.messages, [])
        # the session and its link go on
        self.deliver(c, make_message(body=b"second\r\n"), b"BDAT", be)
        self.assertEqual(be.connections, 1)

    def test_refused_late_data_is_said_after_the_data(self):
        """The client had mxgate's 354; the backend's refusal of DATA is its reply at the end."""
        be = RecordingBackend(self, fault="refuse_data")
        c = self.session(be)
        r = self.end_reply(c, dot_stuff(make_message(body=b".dotted\r\n")), 554)
        self.assertIn(b"no DATA for you", r.raw)
        self.assertEqual(be.messages, [])
        self.assertEqual(c.cmd("NOOP").code, 250)
        # the link was reset, not closed (a MAIL that comes while the
        # RSET is out may take a second link)
        wait_until(lambda: b"RSET" in be.verbs(), 10 * SCALE, what="RSET")
        self.deliver(c, make_message(body=b".dotted again\r\n"), b"DATA", be)
        self.assertLessEqual(be.connections, 2)

    def test_refused_late_data_in_mid_message(self):
        """Refused while the client is still sending: the rest is read and dropped."""
        be = RecordingBackend(self, fault="refuse_data")
        c = self.session(be)
        self.envelope(c)
        wire = dot_stuff(make_message(body=b"x" * 900 + b"\r\n" * 30000))
        c.send(wire[:20000])
        time.sleep(0.3)
        c.send(wire[20000:])
        r = c.reply(timeout=10 * SCALE)
        self.assertEqual(r.code, 554, r)
        self.assertEqual(be.messages, [])
        # a large message: the next goes by DATA at once
        self.deliver(c, make_message(body=b"next\r\n"), b"DATA", be)

    def test_smuggling_in_a_held_message_reaches_no_backend(self):
        be = RecordingBackend(self)
        c = self.session(be)
        for bad in (b"a\nb\r\n", b"a\rb\r\n", b"nul\x00\r\n", b"x\r\n\n.\r\nMAIL FROM:<evil@example.test>\r\n"):
            self.end_reply(c, b"Subject: s\r\n\r\n" + bad + b"\r\n.\r\n", 550)
        # each refused transaction's link was reset, not closed (a MAIL
        # that comes while the RSET is out may take a second link)
        wait_until(lambda: be.verbs().count(b"RSET") == 4, 10 * SCALE, what="4 RSETs")
        self.assertEqual(be.messages, [])
        verbs = be.verbs()
        self.assertNotIn(b"BDAT", verbs)
        self.assertNotIn(b"DATA", verbs)
        self.assertLessEqual(be.connections, 2)
        self.deliver(c, make_message(body=b"clean\r\n"), b"BDAT", be)

    def test_too_big_held_message_reaches_no_backend(self):
        be = RecordingBackend(self)
        c = self.open_session(self.gate(be, server={"max_message_size": "2K"}))
        self.end_reply(c, dot_stuff(make_message(body=b"y" * 70 + b"\r\n") * 60), 552)
        self.assertEqual(be.messages, [])
        self.assertNotIn(b"BDAT", be.verbs())

    def test_link_lost_while_held(self):
        be = RecordingBackend(self, fault="close_after_rcpt")
        c = self.session(be)
        self.envelope(c)
        wire = dot_stuff(make_message())
        c.send(wire[:30])
        time.sleep(0.8)          # the backend closes meanwhile
        c.send(wire[30:])
        r = c.reply(timeout=10 * SCALE)
        self.assertEqual(r.code, 451, r)
        self.assertIn(b"4.4.2", r.raw)
        self.deliver(c, make_message(body=b"again\r\n"), b"BDAT", be)
        self.assertEqual(be.connections, 2)

    def test_link_lost_at_late_data(self):
        be = RecordingBackend(self, fault="close_at_data")
        c = self.session(be)
        r = self.end_reply(c, dot_stuff(make_message(body=b".dot\r\n")), 451)
        self.assertIn(b"4.4.2", r.raw)
        self.deliver(c, make_message(body=b".dot\r\n"), b"DATA", be)

    def test_late_data_answered_out_of_step(self):
        """250 to the late DATA: the link is closed (no message text on it), 451 at the end."""
        be = RecordingBackend(self, fault="data_250")
        c = self.session(be)
        r = self.end_reply(c, dot_stuff(make_message(body=b".dot\r\n")), 451)
        self.assertIn(b"4.4.2", r.raw)
        self.assertEqual(be.messages, [])
        self.deliver(c, make_message(body=b".dot\r\n"), b"DATA", be)
        self.assertEqual(be.connections, 2)

    def test_client_gone_while_held(self):
        be = RecordingBackend(self)
        gate = self.gate(be)
        c = self.open_session(gate)
        self.envelope(c)
        c.send(b"Subject: half\r\n\r\nnever ends")
        c.close()
        time.sleep(0.3)
        c = self.open_session(gate)
        self.deliver(c, make_message(body=b"after\r\n"), b"BDAT", be)
        self.assertEqual(len(be.messages), 1)
        self.assertNotIn(b"DATA", be.verbs())

    def test_pipelined_data_went_ahead(self):
        """A DATA the client pipelined went to the backend with MAIL: its 354 is claimed, no BDAT."""
        be = RecordingBackend(self)
        c = self.session(be)
        msg = make_message(body=b"pipelined\r\n")
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        self.assertEqual([r.code for r in c.replies(3, timeout=10 * SCALE)], [250, 250, 354])
        c.send(dot_stuff(msg))
        r = c.reply(timeout=10 * SCALE)
        self.assertEqual(r.code, 250, r)
        self.assertEqual(be.messages[0][0], b"DATA")
        self.assertEqual(without_received(be.messages[0][2]), msg)

    def test_mxsink_stores_bdat_exactly(self):
        """mxsink offers CHUNKING: small messages reach it by BDAT, byte for byte."""
        sink = start_mxsink(self)
        port = free_port()
        gate = start_mxgate(self, gate_config(port, [dict(address=sink.port)], relay_domains="example.test"))
        c = self.open_session(gate)
        bodies = [b"hello\r\n", b"", b"8bit \xe9\xe8\r\n", b"end dot.\r\n", b".lead\r\n"]
        for i, body in enumerate(bodies):
            msg = make_message(subject="bdat %d" % i, body=body)
            self.send_message(c, "a@example.test", ["b@example.test"], dot_stuff(msg))
        sink.wait_messages(len(bodies))
        got = {m["data"].split(b"Subject: bdat ")[1][:1]: m["data"] for m in sink.messages()}
        for i, body in enumerate(bodies):
            self.assertEqual(without_received(got[b"%d" % i]).split(b"\r\n\r\n", 1)[1], body)
        log = sink.proc.log()
        self.assertEqual(log.count(b"via=BDAT"), 4, log)
        self.assertEqual(log.count(b"via=DATA"), 1, log)


class MxsinkBdat(MxTestCase):
    """mxsink's own BDAT (RFC 3030), spoken to directly."""

    def session(self, *args):
        sink = start_mxsink(self, extra_args=args)
        c = RawSMTP(sink.port, test=self)
        self.assertEqual(c.greeting().code, 220)
        return sink, c

    def test_chunks_and_refusals(self):
        sink, c = self.session()
        r = c.cmd("EHLO client.example.test")
        self.assertIn(b"250-CHUNKING", r.raw)
        # no MAIL yet: the chunk is read all the same, then refused
        c.send(b"BDAT 5 LAST\r\nMAIL ")
        self.assertEqual(c.reply().code, 503)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        c.send(b"BDAT 4\r\n.\r\nx")
        r = c.reply()
        self.assertEqual((r.code, b"4 octets" in r.raw), (250, True), r)
        self.assertEqual(c.cmd("DATA").code, 503)      # no mixing in one transaction
        c.send(b"BDAT 3 LAST\r\n\r\n.")
        self.assertEqual(c.reply().code, 250)
        sink.wait_messages(1)
        self.assertEqual(sink.messages()[0]["data"], b".\r\nx\r\n.")
        # RSET drops a transaction whose LAST chunk never came
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        c.send(b"BDAT 2\r\nab")
        self.assertEqual(c.reply().code, 250)
        self.assertEqual(c.cmd("RSET").code, 250)
        self.assertEqual(c.cmd("MAIL FROM:<a@example.test>").code, 250)
        self.assertEqual(c.cmd("RCPT TO:<b@example.test>").code, 250)
        c.send(b"BDAT 0 LAST\r\n")
        self.assertEqual(c.reply().code, 250)
        sink.wait_messages(2)
        self.assertEqual(sorted(m["data"] for m in sink.messages()), [b"", b".\r\nx\r\n."])
        # a size that cannot be read: 501 and the end of the session
        c.send(b"BDAT 12x\r\n")
        self.assertEqual(c.reply().code, 501)
        c.expect_closed()
        # a client gone in the middle of a chunk: the message is counted aborted, nothing stored
        c = RawSMTP(sink.port, test=self)
        c.greeting()
        c.cmd("EHLO client.example.test")
        c.cmd("MAIL FROM:<a@example.test>")
        c.cmd("RCPT TO:<b@example.test>")
        c.send(b"BDAT 10 LAST\r\nabc")
        time.sleep(0.2)
        c.close()
        time.sleep(0.2)
        totals = sink.stop_and_totals()
        self.assertEqual((totals.get("messages"), totals.get("aborted")), (2, 1), totals)
        self.assertEqual(len(sink.messages()), 2)

    def test_no_chunking(self):
        _, c = self.session("--no-chunking")
        r = c.cmd("EHLO client.example.test")
        self.assertEqual(r.code, 250)
        self.assertNotIn(b"CHUNKING", r.raw)
