"""
The command line: mxgate -t -c FILE (0 if valid, else 1 with
"FILE:LINE: message" on stderr), -V, -h (mxsink and mxload's too), and the
shipped example config.
"""

import os
import re
import subprocess
import unittest

from harness import (ROOT, SCALE, MxTestCase, binary, check_sanitizer_output, gate_config,
                     render_config)


class ConfigCli(MxTestCase):
    def run_gate(self, *args):
        p = subprocess.run([binary("mxgate")] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20 * SCALE, cwd=ROOT)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        check_sanitizer_output(self, "mxgate %s" % " ".join(args), out + err)
        return p.returncode, out, err

    def write(self, name, text):
        path = os.path.join(self.tmpdir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def good_text(self):
        return render_config(gate_config(2525, ["127.0.0.1:2600", "127.0.0.1:2601"]))

    def test_good_config(self):
        path = self.write("good.conf", self.good_text())
        rc, out, err = self.run_gate("-t", "-c", path)
        self.assertEqual(rc, 0, out + err)

    def test_full_config(self):
        text = render_config({
            "server": {"hostname": "mx.example.test", "workers": "auto", "max_message_size": "50M",
                       "max_recipients": 100, "max_errors": 10, "timeout_command": "5m",
                       "timeout_data": "10m", "drain_timeout": "30s", "log": "stderr",
                       "log_format": "text", "log_level": "info"},
            "listener mx": {"listen": "127.0.0.1:2525, [::1]:2525", "relay_domains": "example.test, *",
                            "backends": "mta1, mta2"},
            "backend mta1": {"address": "127.0.0.1:2600", "weight": 1, "max_connections": 100},
            "backend mta2": {"address": "127.0.0.1:2601", "weight": 3, "max_connections": 10},
        })
        text = "; a comment\n# another\n" + text.replace("[server]", "[server]  ; trailing comment", 1)
        path = self.write("full.conf", text)
        rc, out, err = self.run_gate("-t", "-c", path)
        self.assertEqual(rc, 0, out + err)

    def test_example_config(self):
        rc, out, err = self.run_gate("-t", "-c", os.path.join(ROOT, "conf", "mxgate.conf"))
        self.assertEqual(rc, 0, out + err)

    def bad(self, lines, bad_line, what):
        text = "\n".join(lines) + "\n"
        path = self.write("bad.conf", text)
        rc, out, err = self.run_gate("-t", "-c", path)
        self.assertEqual(rc, 1, "%s: exit status %d\n%s%s" % (what, rc, out, err))
        if bad_line is None:
            self.assertRegex(err, re.escape(path) + r":\d+: ", what)
        else:
            self.assertIn("%s:%d: " % (path, bad_line), err, what)

    def base_lines(self):
        return self.good_text().split("\n")

    def test_errors_name_file_and_line(self):
        cases = []
        # unknown key in [server]
        ls = self.base_lines()
        ls.insert(1, "no_such_key = 1")
        cases.append(("unknown key", ls, 2))
        # unknown section
        ls = self.base_lines() + ["[nonsense]", "x = 1"]
        cases.append(("unknown section", ls, len(self.base_lines()) + 1))

        def replace(key, value, what):
            ls = self.base_lines()
            i = next(n for n, l in enumerate(ls) if l.split(" = ")[0] == key)
            ls[i] = "%s = %s" % (key, value)
            cases.append((what, ls, i + 1))

        replace("drain_timeout", "5 parsecs", "bad duration")
        replace("drain_timeout", "-3s", "negative duration")
        replace("max_message_size", "huge", "bad size")
        replace("max_message_size", "10X", "bad size unit")
        replace("workers", "many", "bad workers")
        replace("listen", "not-an-address", "bad listen address")
        replace("listen", "127.0.0.1:99999", "port out of range")
        # weight out of range (1..1000)
        ls = self.base_lines()
        i = next(n for n, l in enumerate(ls) if l == "[backend b1]")
        ls.insert(i + 2, "weight = 0")
        cases.append(("weight 0", ls, i + 3))
        ls = self.base_lines()
        ls.insert(i + 2, "weight = 1001")
        cases.append(("weight 1001", ls, i + 3))
        # unknown key in a listener
        ls = self.base_lines()
        j = next(n for n, l in enumerate(ls) if l == "[listener in]")
        ls.insert(j + 1, "frobnicate = yes")
        cases.append(("unknown listener key", ls, j + 2))
        # a line that is not INI
        ls = self.base_lines()
        ls.insert(1, "this is not ini")
        cases.append(("syntax", ls, 2))
        for what, ls, line in cases:
            with self.subTest(case=what):
                self.bad(ls, line, what)

    def test_missing_required_parts(self):
        # a backend without address: the error names its section (or a line in it)
        text = self.good_text()
        text = re.sub(r"(?m)^\[backend b2\]\naddress = .*\n", "[backend b2]\nweight = 2\n", text)
        path = self.write("noaddr.conf", text)
        rc, out, err = self.run_gate("-t", "-c", path)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, re.escape(path) + r":\d+: ")
        # no listener at all
        text = render_config({"server": {"hostname": "mx.example.test"},
                              "backend b1": {"address": "127.0.0.1:2600"}})
        path = self.write("nolistener.conf", text)
        rc, out, err = self.run_gate("-t", "-c", path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(path + ":", err)

    def test_missing_file(self):
        path = os.path.join(self.tmpdir, "does-not-exist.conf")
        rc, out, err = self.run_gate("-t", "-c", path)
        self.assertEqual(rc, 1, out + err)
        self.assertIn(path, err)

    def test_run_with_bad_config_fails(self):
        self.bad_run = self.write("bad.conf", "[server]\nno_such_key = 1\n")
        rc, out, err = self.run_gate("-c", self.bad_run)
        self.assertNotEqual(rc, 0)
        self.assertIn("%s:2: " % self.bad_run, err)

    def test_version(self):
        rc, out, err = self.run_gate("-V")
        self.assertEqual(rc, 0, out + err)
        self.assertRegex(out + err, r"\d+\.\d+")

    def test_help(self):
        rc, out, err = self.run_gate("-h")
        self.assertEqual(rc, 0, out + err)
        text = (out + err).lower()
        self.assertIn("usage", text)
        for flag in ("-c", "-t", "-v"):
            self.assertIn(flag, text)

    def test_bad_option(self):
        rc, out, err = self.run_gate("--no-such-option")
        self.assertNotEqual(rc, 0)
        self.assertTrue(err.strip(), "nothing on stderr")

    def test_bench_tools_version_and_help(self):
        """mxsink and mxload answer -V and -h (and --version, --help) with exit 0; a bad option exits non-zero."""
        for prog in ("mxsink", "mxload"):
            for args, want in ((["-V"], r"^%s \d+\.\d+" % prog), (["--version"], r"^%s \d+\.\d+" % prog),
                               (["-h"], r"usage: %s" % prog), (["--help"], r"usage: %s" % prog)):
                p = subprocess.run([binary(prog)] + args, stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=20 * SCALE)
                out = p.stdout.decode("utf-8", "replace")
                self.assertEqual(p.returncode, 0, (prog, args, out, p.stderr))
                self.assertRegex(out, want, (prog, args))
            p = subprocess.run([binary(prog), "--no-such-option"], stdin=subprocess.DEVNULL,
                               capture_output=True, timeout=20 * SCALE)
            self.assertNotEqual(p.returncode, 0, prog)
            self.assertTrue(p.stderr.strip(), prog)


if __name__ == "__main__":
    unittest.main()
