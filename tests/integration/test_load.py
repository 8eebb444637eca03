"""
200 concurrent clients (mxload) through mxgate into mxsink --store:
every message that got a 2xx final reply is stored exactly once, and
nothing else is stored ("accepted implies delivered", and no duplicates).
"""

import os
import subprocess
import time
import unittest

from harness import (MxTestCase, SCALE, binary, check_sanitizer_output, free_port, gate_config,
                     header_value, start_mxgate, start_mxsink)


def norm_id(s):
    s = s.strip()
    if isinstance(s, bytes):
        s = s.decode("utf-8", "replace")
    return s.strip().strip("<>").strip()


class Load(MxTestCase):
    def test_200_concurrent_clients(self):
        self.check_load(())

    def test_200_concurrent_pipelining_clients(self):
        """The same with MAIL, 3 RCPTs and DATA in one write: the group goes ahead to mxsink."""
        stored = self.check_load(("--pipelining", "--recipients", "3"))
        bad = [m["path"] for m in stored if len(m["rcpts"]) != 3]
        self.assertEqual(bad, [], "stored with other than 3 recipients")

    def check_load(self, extra):
        """2000 messages from 200 clients: every accepted one stored once, nothing else; the stored ones."""
        sink = start_mxsink(self, extra_args=["--quiet"])
        port = free_port()
        gate = start_mxgate(self, gate_config(
            port, [{"address": sink, "max_connections": 400}], workers=2,
            server={"max_errors": 100}))
        id_log = os.path.join(self.tmpdir, "ids.log")
        argv = [binary("mxload"), "--target", "127.0.0.1:%d" % port, "--connections", "200",
                "--messages", "2000", "--id-log", id_log, "--rcpt-domain", "example.test",
                "--from", "load@example.test"] + list(extra)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120 * SCALE)
        out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
        self.register_log_text("mxload.out", out)
        check_sanitizer_output(self, "mxload's output", out)
        self.assertEqual(p.returncode, 0, "mxload failed:\n" + out[-4000:])

        with open(id_log, "rb") as f:
            ids = [norm_id(l) for l in f.read().splitlines() if l.strip()]
        self.assertEqual(len(ids), len(set(ids)), "mxload logged an ID twice")
        # on an unloaded pair every message should be accepted
        self.assertEqual(len(ids), 2000, "only %d of 2000 messages accepted:\n%s" % (len(ids), out[-3000:]))

        stored = sink.wait_messages(len(ids), timeout=30)
        # settle: nothing more may arrive
        time.sleep(1.0 * SCALE)
        stored = sink.messages()
        seen = {}
        no_id = []
        for m in stored:
            mid = header_value(m["data"], "Message-ID")
            if mid is None:
                no_id.append(m["path"])
                continue
            mid = norm_id(mid)
            seen[mid] = seen.get(mid, 0) + 1
        self.assertEqual(no_id, [], "stored messages without a Message-ID")
        dups = {k: v for k, v in seen.items() if v > 1}
        self.assertEqual(dups, {}, "delivered more than once")
        missing = set(ids) - set(seen)
        extra = set(seen) - set(ids)
        self.assertEqual(len(missing), 0, "accepted but not delivered: %d, e.g. %s"
                         % (len(missing), sorted(missing)[:5]))
        self.assertEqual(len(extra), 0, "delivered but not accepted: %d, e.g. %s"
                         % (len(extra), sorted(extra)[:5]))
        self.assertEqual(len(stored), len(ids))
        return stored

    def register_log_text(self, name, text):
        path = os.path.join(self.tmpdir, name)
        with open(path, "w") as f:
            f.write(text)
        self.register_log(path)


if __name__ == "__main__":
    unittest.main()
