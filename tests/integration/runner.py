"""
runner.py [--result FILE] MODULE... - runs integration test modules with a
result that prints one line per test as it ends, prints the traceback and
the tails of the test's process logs for each failure, removes each
test's temp folder afterwards (MXGATE_KEEP=1 keeps them), and writes
"PASSED FAILED SKIPPED" to FILE for scripts/run-tests.sh.
"""

import argparse
import os
import shutil
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ["MXGATE_RUNNER"] = "1"


class Result(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.n_pass = 0
        self.n_fail = 0
        self.n_skip = 0
        self._failed_now = False
        self._in_test = False
        self._t0 = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._in_test = True
        self._failed_now = False
        self._t0 = time.monotonic()

    def _report(self, test, kind, err):
        self._failed_now = True
        if not self._in_test:
            self.n_fail += 1  # setUpClass / module fixture errors: no start/stopTest
        print("%-5s %s (%.1fs)" % (kind, test.id(), time.monotonic() - self._t0), flush=True)
        print(self._exc_info_to_string(err, test), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        self._report(test, "ERROR", err)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._report(test, "FAIL", err)

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._report(subtest, "FAIL", err)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self.n_skip += 1
        print("skip  %s: %s" % (test.id(), reason), flush=True)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._failed_now = True
        print("FAIL  %s: unexpected success" % test.id(), flush=True)

    def stopTest(self, test):
        super().stopTest(test)
        self._in_test = False
        skipped = any(t is test for t, _ in self.skipped)
        if self._failed_now:
            self.n_fail += 1
            for path in getattr(test, "logs", []):
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                print("---- %s (last 6000 bytes of %d) ----" % (path, len(data)))
                print(data[-6000:].decode("utf-8", "replace"), flush=True)
        elif not skipped:
            self.n_pass += 1
            print("ok    %s (%.1fs)" % (test.id(), time.monotonic() - self._t0), flush=True)
        tmp = getattr(test, "tmpdir", None)
        if tmp and os.environ.get("MXGATE_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp and self._failed_now:
            print("kept %s" % tmp, flush=True)


def on_signal(signum, _frame):
    # Children live in sessions of their own: stop them before going.
    import harness
    harness.kill_all()
    print("runner: signal %d, children killed" % signum, flush=True)
    os._exit(128 + signum)


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ap = argparse.ArgumentParser()
    ap.add_argument("--result")
    ap.add_argument("modules", nargs="+")
    a = ap.parse_args()
    loader = unittest.TestLoader()
    result = Result()
    for mod in a.modules:
        try:
            suite = loader.loadTestsFromName(mod)
        except Exception as e:  # an import error is one failure, not a crash
            print("ERROR loading %s: %r" % (mod, e), flush=True)
            result.n_fail += 1
            continue
        suite.run(result)
    print("%s: %d passed, %d failed, %d skipped"
          % (" ".join(a.modules), result.n_pass, result.n_fail, result.n_skip), flush=True)
    if a.result:
        with open(a.result, "w") as f:
            f.write("%d %d %d\n" % (result.n_pass, result.n_fail, result.n_skip))
    return 1 if result.n_fail or not (result.n_pass + result.n_fail) else 0


if __name__ == "__main__":
    sys.exit(main())
