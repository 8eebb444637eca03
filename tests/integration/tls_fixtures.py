"""
tls_fixtures.py - what test_tls.py and test_auth.py share: test
certificates (conf/make-test-certs.sh when it is there, else openssl
commands), a RawSMTP that can STARTTLS or start in TLS, Python ssl
contexts, crypt(3) hashes for [auth] users files, and the small runners
for the real clients (swaks, curl, openssl s_client).

Stdlib only. The certificates are made once per test process, in a temp
folder removed at exit.
"""

import atexit
import ctypes
import ctypes.util
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from harness import CRLF, ROOT, SCALE, Closed, RawSMTP

# ---------------------------------------------------------------- certificates

CERT_NAMES = ("ca.crt", "server.crt", "server.key", "server-chain.crt", "other.crt", "other.key",
              "server-rsa.crt", "server-rsa.key")
SERVER_SANS = "DNS:localhost,DNS:mx.example.test,IP:127.0.0.1"

_CERTS = None


def _openssl(*args, cwd):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode("utf-8", "replace")))


def _leaf(d, name, cn, sans, key_alg, ca="ca"):
    """name.key + name.crt for cn/sans, signed by ca (or self-signed when ca is None)."""
    if key_alg == "rsa":
        keyopt = ["-newkey", "rsa:2048"]
    else:
        keyopt = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    ext = os.path.join(d, name + ".ext")
    with open(ext, "w") as f:
        f.write("basicConstraints = critical, CA:FALSE\n"
                "keyUsage = critical, digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n"
                "subjectAltName = %s\n" % sans)
    if ca is None:
        _openssl("req", "-x509", *keyopt, "-nodes", "-keyout", name + ".key", "-out", name + ".crt",
                 "-days", "3650", "-subj", "/CN=%s" % cn, "-addext", "subjectAltName = %s" % sans,
                 "-addext", "basicConstraints = critical, CA:FALSE", cwd=d)
        return
    _openssl("req", "-new", *keyopt, "-nodes", "-keyout", name + ".key", "-out", name + ".csr",
             "-subj", "/CN=%s" % cn, cwd=d)
    _openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".crt", "-CAkey", ca + ".key",
             "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "3650",
             "-sha256", "-extfile", name + ".ext", "-out", name + ".crt", cwd=d)


def _make_with_openssl(d):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=mxgate test CA",
             "-addext", "basicConstraints = critical, CA:TRUE",
             "-addext", "keyUsage = critical, keyCertSign, cRLSign", cwd=d)
    _leaf(d, "server", "localhost", SERVER_SANS, "ec")
    _leaf(d, "server-rsa", "localhost", SERVER_SANS, "rsa")
    _leaf(d, "other", "other.example.test", "DNS:other.example.test", "ec")
    with open(os.path.join(d, "server-chain.crt"), "w") as out:
        for n in ("server.crt", "ca.crt"):
            with open(os.path.join(d, n)) as f:
                out.write(f.read())


def certs():
    """
    {name: path} for CERT_NAMES plus "selfsigned.crt"/"selfsigned.key" (not
    signed by the CA, SAN 127.0.0.1) and "dir". Made once per process.
    """
    global _CERTS
    if _CERTS is not None:
        return _CERTS
    d = tempfile.mkdtemp(prefix="mxgate-certs-")
    atexit.register(shutil.rmtree, d, True)
    # Postfix's smtpd (user postfix) reads them too
    os.chmod(d, 0o755)
    script = os.path.join(ROOT, "conf", "make-test-certs.sh")
    used = "openssl"
    if os.path.isfile(script):
        r = subprocess.run(["bash", script, d], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120, cwd=ROOT)
        missing = [n for n in CERT_NAMES if not os.path.isfile(os.path.join(d, n))]
        if r.returncode == 0 and not missing:
            used = "conf/make-test-certs.sh"
        else:
            # a broken script must not hide the TLS tests: say so and make them here
            print("tls_fixtures: %s failed (status %d, missing %s): %s; using openssl"
                  % (script, r.returncode, missing, r.stdout.decode("utf-8", "replace")[-2000:]),
                  flush=True)
            for n in os.listdir(d):
                p = os.path.join(d, n)
                shutil.rmtree(p) if os.path.isdir(p) else os.unlink(p)
    if used == "openssl":
        _make_with_openssl(d)
    _leaf(d, "selfsigned", "selfsigned.example.test", "DNS:localhost,IP:127.0.0.1", "ec", ca=None)
    for n in os.listdir(d):
        os.chmod(os.path.join(d, n), 0o644)
    out = {n: os.path.join(d, n) for n in CERT_NAMES + ("selfsigned.crt", "selfsigned.key")}
    out["dir"] = d
    out["made_by"] = used
    _CERTS = out
    return out


def copy_certs(test, *names):
    """Copies the named certificate files into test.tmpdir; returns {name: new path}."""
    c = certs()
    out = {}
    for n in names:
        dst = os.path.join(test.tmpdir, n)
        shutil.copyfile(c[n], dst)
        out[n] = dst
    return out


def pem_der(path):
    """DER of the first certificate of a PEM file."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\s*", text, re.S)
    if not m:
        raise AssertionError("no certificate in %s" % path)
    return ssl.PEM_cert_to_DER_cert(m.group(0))


def tls_section(**kw):
    """A [tls] section with the test server certificate; kw adds or overrides keys."""
    c = certs()
    d = {"certificate": c["server.crt"], "key": c["server.key"]}
    d.update(kw)
    return d


# ---------------------------------------------------------------- clients

def client_context(verify=True, minimum=None, maximum=None, ca=None):
    """An ssl client context trusting the test CA (verify) or nothing (verify=False)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        ctx.load_verify_locations(ca or certs()["ca.crt"])
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class TlsSMTP(RawSMTP):
    """
    A RawSMTP that can switch to TLS: starttls() sends STARTTLS, expects
    220 and handshakes; handshake() wraps at once (implicit TLS). Then
    send()/reply() go through TLS.
    """

    def __init__(self, port, test=None, timeout=10.0, host="127.0.0.1", source=None):
        super().__init__(port, host=host, timeout=timeout, test=test, source=source)
        self.plain = self.sock

    def handshake(self, ctx=None, server_hostname="mx.example.test", session=None):
        if self.buf:
            raise AssertionError("bytes before the TLS handshake: %r" % self.buf)
        ctx = ctx or client_context()
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.plain, server_hostname=server_hostname, session=session)
        return self.sock

    def starttls(self, ctx=None, server_hostname="mx.example.test", session=None):
        r = self.cmd("STARTTLS")
        if r.code != 220:
            raise AssertionError("STARTTLS: %r" % r)
        self.handshake(ctx, server_hostname, session)
        return r

    def peer_der(self):
        return self.sock.getpeercert(binary_form=True)

    def close(self):
        for s in (self.sock, getattr(self, "plain", None)):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass


def tls_client(test, port, **kw):
    return TlsSMTP(port, test=test, **kw)


def ehlo_keywords(reply):
    """{KEYWORD: line} of an EHLO reply (the first line, the host name, left out)."""
    return {l.split(b" ")[0].upper().decode(): l for l in reply.lines[1:]}


def run_tool(test, argv, input=None, timeout=30):
    """Runs a client program; returns (status, stdout+stderr as text). Bounded."""
    try:
        r = subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout * SCALE, cwd=test.tmpdir)
    except subprocess.TimeoutExpired as e:
        test.fail("%s did not finish in %ss; output:\n%s"
                  % (argv[0], timeout * SCALE, (e.stdout or b"").decode("utf-8", "replace")))
    return r.returncode, r.stdout.decode("utf-8", "replace")


class Interactive:
    """
    A client program driven line by line on its stdin, its output read by
    a thread; expect() waits (bounded) for a regex. Killed by pid at
    cleanup.
    """

    def __init__(self, test, argv):
        self.out = b""
        self.lock = threading.Lock()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, cwd=test.tmpdir, start_new_session=True)
        test.addCleanup(self.stop)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            chunk = self.p.stdout.read1(65536)
            if not chunk:
                return
            with self.lock:
                self.out += chunk

    def text(self):
        with self.lock:
            return self.out.decode("utf-8", "replace")

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def expect(self, regex, timeout=10.0, start=0):
        deadline = time.monotonic() + timeout * SCALE
        rx = re.compile(regex, re.M)
        while time.monotonic() < deadline:
            m = rx.search(self.text(), start)
            if m:
                return m
            if self.p.poll() is not None:
                time.sleep(0.1)
                m = rx.search(self.text(), start)
                if m:
                    return m
                raise AssertionError("%r not seen; the program exited %s; output:\n%s"
                                     % (regex, self.p.returncode, self.text()))
            time.sleep(0.02)
        raise AssertionError("%r not seen in %.0fs; output:\n%s" % (regex, timeout * SCALE, self.text()))

    def wait(self, timeout=10.0):
        try:
            return self.p.wait(timeout * SCALE)
        except subprocess.TimeoutExpired:
            raise AssertionError("program still running after %.0fs; output:\n%s"
                                 % (timeout * SCALE, self.text()))

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.kill()
            except ProcessLookupError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                pass
        for f in (self.p.stdin, self.p.stdout):
            try:
                f.close()
            except (OSError, ValueError):
                pass


# ---------------------------------------------------------------- log helpers

TLS_LOG_RE = re.compile(rb"tls=(\S+) cipher=(\S+) resumed=(yes|no) sni=(\S+)")


def tls_log_lines(gate):
    """[(version, cipher, resumed, sni)] of every TLS session line in mxgate's log."""
    return [tuple(x.decode() for x in m.groups()) for m in TLS_LOG_RE.finditer(gate.log())]


def wait_tls_lines(gate, pred=None, count=None, timeout=5.0):
    """
    Waits until the TLS session lines of mxgate's log (tls_log_lines)
    satisfy pred(lines), or number at least count; returns them. mxgate may
    write them when the handshake ends or with the connection's summary
    line when it closes: close the sessions first.
    """
    deadline = time.monotonic() + timeout * SCALE
    while True:
        lines = tls_log_lines(gate)
        if (pred is None or pred(lines)) and (count is None or len(lines) >= count):
            return lines
        if time.monotonic() >= deadline:
            raise AssertionError("TLS log lines not as expected after %.0fs: %r; log:\n%s"
                                 % (timeout * SCALE, lines, gate.log()[-3000:].decode("utf-8", "replace")))
        time.sleep(0.05)


def wait_log(gate, pattern, timeout=5.0, count=1):
    """Waits until mxgate's log matches pattern (bytes regex) count times; returns the matches."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout * SCALE
    while True:
        found = rx.findall(gate.log())
        if len(found) >= count:
            return found
        if time.monotonic() >= deadline:
            raise AssertionError("mxgate's log lacks %r (x%d) after %.0fs; log:\n%s"
                                 % (pattern, count, timeout * SCALE,
                                    gate.log()[-4000:].decode("utf-8", "replace")))
        time.sleep(0.05)


def received_tls(received):
    """(version, cipher) of the "(using V with cipher C)" line of a Received: header, or None."""
    m = re.search(rb"\(using (\S+) with cipher (\S+)\)", received)
    return (m.group(1).decode(), m.group(2).decode()) if m else None


def received_with(received):
    m = re.search(rb"\bwith (\S+) id\b", received)
    return m.group(1).decode() if m else None


# ---------------------------------------------------------------- password hashes

_libcrypt = None


def _crypt_lib():
    global _libcrypt
    if _libcrypt is None:
        name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
        lib = ctypes.CDLL(name)
        lib.crypt_gensalt_rn.restype = ctypes.c_char_p
        lib.crypt_gensalt_rn.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                         ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.crypt_rn.restype = ctypes.c_char_p
        lib.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
        _libcrypt = lib
    return _libcrypt


PREFIX = {"yescrypt": "$y$", "sha512crypt": "$6$", "bcrypt": "$2b$"}


def make_hash(scheme, password, cost=None):
    """
    A crypt(3) hash of password: scheme yescrypt | sha512crypt | bcrypt;
    cost is mkpasswd's -R (yescrypt 1..11, bcrypt 4..31, sha512 rounds).
    mkpasswd (package whois) when installed, else libcrypt through ctypes,
    else `openssl passwd -6` (sha512crypt only). Raises unittest.SkipTest
    when none can make it.
    """
    import unittest
    if shutil.which("mkpasswd"):
        argv = ["mkpasswd", "-m", scheme, "--stdin"]
        if cost is not None:
            argv[3:3] = ["-R", str(cost)]
        r = subprocess.run(argv, input=password.encode() + b"\n", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        h = r.stdout.decode().strip()
        if r.returncode == 0 and h.startswith(PREFIX[scheme]):
            return h
    try:
        lib = _crypt_lib()
        out = ctypes.create_string_buffer(256)
        rnd = os.urandom(32)
        setting = lib.crypt_gensalt_rn(PREFIX[scheme].encode(), cost or 0, rnd, len(rnd), out, 256)
        if setting:
            data = ctypes.create_string_buffer(32768 * 2)
            h = lib.crypt_rn(password.encode(), setting, data, len(data))
            if h and h.startswith(PREFIX[scheme].encode()):
                return h.decode()
    except OSError:
        pass
    if scheme == "sha512crypt" and shutil.which("openssl"):
        r = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input=password.encode() + b"\n",
                           stdout=subprocess.PIPE, timeout=30)
        if r.returncode == 0:
            return r.stdout.decode().strip()
    raise unittest.SkipTest("cannot make a %s hash here (no mkpasswd, no libcrypt)" % scheme)


def write_users(test, users, name="users"):
    """Writes "name:hash" lines ({name: hash}) to test.tmpdir/NAME; returns the path."""
    path = os.path.join(test.tmpdir, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for u, h in users.items():
            f.write("%s:%s\n" % (u, h))
    os.replace(tmp, path)
    return path


class BioSocket:
    """
    TLS through ssl.SSLObject over a plain socket, with the wire under the
    test's control: the first flight can carry a prefix in the same write
    (a PROXY header), the handshake's bytes can go out in chunks of a few
    bytes (delay s apart), and each write() is one TLS record. Has the
    socket methods RawSMTP uses (sendall, recv, settimeout, close).
    """

    def __init__(self, sock, ctx, server_hostname=None, prefix=b"", chunk=None, delay=0.0):
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        self.prefix = prefix
        self.chunk = chunk
        self.delay = delay

    def _flush(self):
        data = self.out.read()
        if self.prefix:
            data, self.prefix = self.prefix + data, b""
        if not data:
            return
        if not self.chunk:
            self.sock.sendall(data)
            return
        for i in range(0, len(data), self.chunk):
            self.sock.sendall(data[i:i + self.chunk])
            if self.delay:
                time.sleep(self.delay)

    def _feed(self):
        d = self.sock.recv(65536)
        if not d:
            self.inc.write_eof()
            return False
        self.inc.write(d)
        return True

    def do_handshake(self):
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise Closed("closed during the handshake")

    def sendall(self, data):
        self.obj.write(data)
        self._flush()

    def recv(self, n):
        while True:
            try:
                return self.obj.read(n)
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def settimeout(self, t):
        self.sock.settimeout(t)

    def version(self):
        return self.obj.version()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def bio_handshake(c, ctx=None, server_hostname="mx.example.test", prefix=b"", chunk=None, delay=0.0):
    """Switches TlsSMTP c to TLS through a BioSocket (see there); returns it."""
    if c.buf:
        raise AssertionError("bytes before the TLS handshake: %r" % c.buf)
    b = BioSocket(c.plain, ctx or client_context(), server_hostname, prefix, chunk, delay)
    c.sock.settimeout(c.timeout)
    b.do_handshake()
    b.chunk = None
    c.sock = b
    return b
