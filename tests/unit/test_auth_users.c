/*
 * test_auth_users.c - unit tests of proxy/auth_users.c: loading a users
 * file (comments, blanks, indentation, CRLF, /etc/shadow-like lines),
 * lookup, password verification for yescrypt, sha512-crypt and bcrypt
 * ($2b$ and $2y$), both with hashes made here by crypt_gensalt_rn +
 * crypt_rn at default cost and with lines `mkpasswd` (whois 5.5.17)
 * wrote, the dummy hash, every load error with its FILE:LINE (a FIFO
 * too, which must not hang the load), and the reference count across a
 * reload and across threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "auth_users.h"

/* `mkpasswd -m yescrypt|sha-512|bcrypt` and `-m sha-512 -R 10000`, password "secret". */
#define MK_YESCRYPT "$y$j9T$5apV2NV10IvTUFYlX/jRj/$1P/MKD3iVqbN6JuvEDUF9zhZcvMtsMJTWIj72mAviLD"
#define MK_SHA512 "$6$c.KWrs98/DybORrW$DD.eaXEvDAK33Fj1JfkrnOn7gwazcGSkWZcnz6k9YjHZeVcTsFRJ75Ko8bfZ/PSPzzix67lqkfjPDYm8b58Sy1"
#define MK_SHA512_R "$6$rounds=10000$w2uv8z4XFOutfHBN$sjpS.J0.PIlRZk77NrmWBgLgVBz7Kx1HAtcMIyM5/65RUT95DJYgy9Pd/jE5MkLkOQ/IHcgmkzRMv/G.p6zn1."
#define MK_BCRYPT "$2b$05$3RBpnrQL6PSYjhozzXgRR.y8d.bvLnzls9f/UzpPZpGxj7heVZ1ym"

static char dir[256];
static unsigned nfiles;

/* Hashes of "alice-pw" (yescrypt), "bob-pw" (sha512), "carol-pw" ($2b$), "dave-pw" ($2y$), made at set-up. */
static char h_y[CRYPT_OUTPUT_SIZE], h_6[CRYPT_OUTPUT_SIZE], h_2b[CRYPT_OUTPUT_SIZE], h_2y[CRYPT_OUTPUT_SIZE];

static void
make_hash(const char *prefix, const char *pw, char *out)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;

	assert_non_null(cd);
	/* count 0: libxcrypt's default cost, the one mkpasswd uses */
	assert_non_null(crypt_gensalt_rn(prefix, 0, NULL, 0, setting, sizeof(setting)));
	h = crypt_rn(pw, setting, cd, sizeof(*cd));
	assert_non_null(h);
	assert_true(strlen(h) < CRYPT_OUTPUT_SIZE);
	strcpy(out, h);
	free(cd);
}

static int
setup(void **state)
{
	const char *tmp = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof(dir), "%s/test_auth_users.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		return -1;
	make_hash("$y$", "alice-pw", h_y);
	make_hash("$6$", "bob-pw", h_6);
	make_hash("$2b$", "carol-pw", h_2b);
	make_hash("$2y$", "dave-pw", h_2y);
	return 0;
}

static int
teardown(void **state)
{
	char path[512];

	(void)state;
	for (unsigned i = 0; i < nfiles; i++) {
		snprintf(path, sizeof(path), "%s/users%u", dir, i);
		unlink(path);
	}
	rmdir(dir);
	return 0;
}

/* Writes n octets to a new file of the test directory; its path goes to path. */
static void
write_file_n(char *path, size_t pathlen, const char *content, size_t n)
{
	FILE *f;

	snprintf(path, pathlen, "%s/users%u", dir, nfiles++);
	f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(content, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void
write_file(char *path, size_t pathlen, const char *content)
{
	write_file_n(path, pathlen, content, strlen(content));
}

/* Loads content; the table or NULL, with the error in err. */
static struct auth_users *
load(const char *content, char *path, size_t pathlen, char *err, size_t errlen)
{
	write_file(path, pathlen, content);
	return auth_users_load(path, err, errlen);
}

static struct auth_users *
load_good(void)
{
	char content[4096], path[512], err[512];
	struct auth_users *t;

	snprintf(content, sizeof(content),
		 "# users for submission\n"
		 "\n"
		 "alice:%s\n"
		 "bob:%s\n"
		 "   \t\n"
		 "  carol:%s  \n"				/* indented, trailing blanks */
		 "dave:%s:19700:0:99999:7:::\n"		/* an /etc/shadow line */
		 "erin:" MK_YESCRYPT "\r\n"			/* CRLF */
		 "frank:" MK_SHA512_R "\n"
		 "gina:" MK_BCRYPT "\n"
		 "heidi:" MK_SHA512 "\n"
		 "  # an indented comment\n"
		 "j\xc3\xb6rg@example.org:" MK_SHA512,	/* UTF-8 name, no final newline */
		 h_y, h_6, h_2b, h_2y);
	t = load(content, path, sizeof(path), err, sizeof(err));
	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

static void
test_load_and_lookup(void **state)
{
	struct auth_users *t = load_good();

	(void)state;
	assert_int_equal(auth_users_count(t), 9);
	assert_string_equal(auth_users_lookup(t, "alice"), h_y);
	assert_string_equal(auth_users_lookup(t, "bob"), h_6);
	assert_string_equal(auth_users_lookup(t, "carol"), h_2b);
	assert_string_equal(auth_users_lookup(t, "dave"), h_2y);
	assert_string_equal(auth_users_lookup(t, "erin"), MK_YESCRYPT);
	assert_string_equal(auth_users_lookup(t, "frank"), MK_SHA512_R);
	assert_string_equal(auth_users_lookup(t, "gina"), MK_BCRYPT);
	assert_string_equal(auth_users_lookup(t, "heidi"), MK_SHA512);
	assert_string_equal(auth_users_lookup(t, "j\xc3\xb6rg@example.org"), MK_SHA512);
	/* exact match only */
	assert_null(auth_users_lookup(t, "Alice"));
	assert_null(auth_users_lookup(t, "alic"));
	assert_null(auth_users_lookup(t, "alicex"));
	assert_null(auth_users_lookup(t, "alice "));
	assert_null(auth_users_lookup(t, ""));
	assert_null(auth_users_lookup(t, "zed"));
	assert_null(auth_users_lookup(t, "# users for submission"));
	auth_users_unref(t);
}

static void
test_verify_each_scheme(void **state)
{
	static const struct { const char *user, *pw; } acc[] = {
		{ "alice", "alice-pw" }, { "bob", "bob-pw" }, { "carol", "carol-pw" },
		{ "dave", "dave-pw" }, { "erin", "secret" }, { "frank", "secret" },
		{ "gina", "secret" }, { "heidi", "secret" },
	};
	struct auth_users *t = load_good();
	char wrong[64];

	(void)state;
	for (size_t i = 0; i < sizeof(acc) / sizeof(acc[0]); i++) {
		const char *h = auth_users_lookup(t, acc[i].user);

		assert_non_null(h);
		assert_int_equal(auth_verify_password(h, acc[i].pw), 1);
		assert_int_equal(auth_users_check(t, acc[i].user, acc[i].pw), 1);
		snprintf(wrong, sizeof(wrong), "%sx", acc[i].pw);
		assert_int_equal(auth_verify_password(h, wrong), 0);
		snprintf(wrong, sizeof(wrong), "%.*s", (int)strlen(acc[i].pw) - 1, acc[i].pw);
		assert_int_equal(auth_verify_password(h, wrong), 0);
		assert_int_equal(auth_verify_password(h, ""), 0);
		assert_int_equal(auth_users_check(t, acc[i].user, "Secret"), 0);
	}
	/* unknown user, even with a valid password of another account */
	assert_int_equal(auth_users_check(t, "zed", "alice-pw"), 0);
	assert_int_equal(auth_users_check(t, "Alice", "alice-pw"), 0);
	/* could not verify: fails closed, as a mismatch */
	assert_int_equal(auth_verify_password(NULL, "x"), 0);
	assert_int_equal(auth_verify_password(h_y, NULL), 0);
	assert_int_equal(auth_verify_password("", ""), 0);
	assert_int_equal(auth_verify_password("*", "*"), 0);
	assert_int_equal(auth_verify_password("*0", "x"), 0);
	assert_int_equal(auth_verify_password("$y$zzz$abc$def", "x"), 0);
	auth_users_unref(t);
}

static double
cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void
test_dummy_hash(void **state)
{
	char path[512], err[512], content[1024], setting[256];
	struct auth_users *t = load_good(), *t2, *e;
	const char *d, *bob = auth_users_lookup(t, "bob");
	size_t slen;

	(void)state;
	/* the good file has 4 sha512, 3 bcrypt, 2 yescrypt: the first sha512 account's setting */
	d = auth_users_dummy_hash(t);
	slen = (size_t)(strrchr(bob, '$') - bob);
	assert_int_equal(strncmp(d, bob, slen + 1), 0);
	assert_string_not_equal(d, bob);
	assert_int_equal(strlen(d), strlen(bob));
	assert_int_equal(auth_verify_password(d, "bob-pw"), 0);
	assert_int_equal(auth_verify_password(d, ""), 0);
	/* random each load */
	t2 = load_good();
	assert_string_not_equal(auth_users_dummy_hash(t2), d);
	auth_users_unref(t2);
	auth_users_unref(t);

	/* the cost is copied too: rounds=10000 */
	snprintf(content, sizeof(content), "frank:%s\n", MK_SHA512_R);
	t = load(content, path, sizeof(path), err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(strncmp(auth_users_dummy_hash(t), "$6$rounds=10000$w2uv8z4XFOutfHBN$", 33), 0);
	auth_users_unref(t);

	/* no account: yescrypt at the default cost */
	e = load("# nobody yet\n", path, sizeof(path), err, sizeof(err));
	assert_non_null(e);
	assert_int_equal(auth_users_count(e), 0);
	assert_null(auth_users_lookup(e, "alice"));
	assert_int_equal(strncmp(auth_users_dummy_hash(e), "$y$j9T$", 7), 0);
	assert_int_equal(auth_users_check(e, "alice", "alice-pw"), 0);
	auth_users_unref(e);

	/* An unknown name costs what a known one does (yescrypt table; CPU time, 3 tries each). */
	snprintf(content, sizeof(content), "alice:%s\n", h_y);
	t = load(content, path, sizeof(path), err, sizeof(err));
	assert_non_null(t);
	{
		double known = 0, unknown = 0, t0;

		for (int i = 0; i < 3; i++) {
			t0 = cpu_ms();
			assert_int_equal(auth_users_check(t, "alice", "wrong"), 0);
			known += cpu_ms() - t0;
			t0 = cpu_ms();
			assert_int_equal(auth_users_check(t, "nobody", "wrong"), 0);
			unknown += cpu_ms() - t0;
		}
		if (unknown < known / 2 || unknown > known * 2)
			fail_msg("known %.1f ms, unknown %.1f ms", known / 3, unknown / 3);
	}
	memcpy(setting, h_y, 7);
	setting[7] = '\0';
	assert_int_equal(strncmp(auth_users_dummy_hash(t), setting, 7), 0);
	auth_users_unref(t);
}

static void
expect_error(const char *content, const char *want)
{
	char path[512], err[512], full[1024];
	struct auth_users *t = load(content, path, sizeof(path), err, sizeof(err));

	if (t) {
		auth_users_unref(t);
		fail_msg("accepted: %s", content);
	}
	snprintf(full, sizeof(full), "%s:%s", path, want);
	assert_string_equal(err, full);
}

static void
test_errors(void **state)
{
	char content[2048], longname[300], path[512], err[512], want[1024];
	struct auth_users *t;

	(void)state;
	snprintf(content, sizeof(content), "alice:%s\n\nbob\n", h_y);
	expect_error(content, "3: expected NAME:HASH, no ':' found");
	snprintf(content, sizeof(content), ":%s\n", h_y);
	expect_error(content, "1: empty user name");
	snprintf(content, sizeof(content), "#\nal ice:%s\n", h_y);
	expect_error(content, "2: blank or control character in user name");
	snprintf(content, sizeof(content), "al\x01ice:%s\n", h_y);
	expect_error(content, "1: blank or control character in user name");
	memset(longname, 'n', 256);
	longname[256] = '\0';
	snprintf(content, sizeof(content), "%s:%s\n", longname, h_y);
	expect_error(content, "1: user name longer than 255 octets");
	longname[255] = '\0';
	snprintf(content, sizeof(content), "%s:%s\n", longname, h_y);
	t = load(content, path, sizeof(path), err, sizeof(err));
	assert_non_null(t);
	assert_string_equal(auth_users_lookup(t, longname), h_y);
	auth_users_unref(t);

	expect_error("alice:\n", "1: user alice: no password hash");
	expect_error("alice::19700:0:99999:7:::\n", "1: user alice: no password hash");

#define UNSUP "unsupported password hash (use yescrypt $y$, sha512-crypt $6$ or bcrypt $2b$/$2y$, as mkpasswd writes them)"
	expect_error("alice:$1$abcdefgh$1234567890123456789012\n", "1: user alice: " UNSUP);
	expect_error("alice:$5$rounds=5000$abc$IfCwKhb4RbxJvUE6.pjM4vpD5LnBnSUkoZ7LAC7qwg9\n", "1: user alice: " UNSUP);
	expect_error("alice:$2a$05$WWitAwD36plEHbC8EHN5IemktmSHk/f1znmAvYy8h9REYH81BsNei\n", "1: user alice: " UNSUP);
	expect_error("alice:*\n", "1: user alice: " UNSUP);
	expect_error("alice:!\n", "1: user alice: " UNSUP);
	expect_error("alice:!" MK_SHA512 "\n", "1: user alice: " UNSUP);
	expect_error("alice:secret\n", "1: user alice: " UNSUP);
	expect_error("alice:ab01FcX.bDUI.\n", "1: user alice: " UNSUP);	/* DES */

#define TRUNC "malformed password hash (truncated, or a character outside [./0-9A-Za-z])"
	snprintf(content, sizeof(content), "alice:%.*s\n", (int)strlen(h_y) - 1, h_y);
	expect_error(content, "1: user alice: " TRUNC);
	snprintf(content, sizeof(content), "alice:%sA\n", h_6);
	expect_error(content, "1: user alice: " TRUNC);
	snprintf(content, sizeof(content), "alice:%.*s\n", 40, MK_BCRYPT);
	expect_error(content, "1: user alice: " TRUNC);
	expect_error("alice:$y$j9T$\n", "1: user alice: " TRUNC);
	snprintf(content, sizeof(content), "alice:%.*s!\n", (int)strlen(h_y) - 1, h_y);
	expect_error(content, "1: user alice: malformed password hash (libcrypt's crypt_checksalt refuses it)");
	expect_error("alice:$y$j9T$" "1P/MKD3iVqbN6JuvEDUF9zhZcvMtsMJTWIj72mAviLD\n",
		     "1: user alice: malformed password hash (bad '$' fields)");
	expect_error("alice:$2b$5$" "3RBpnrQL6PSYjhozzXgRR.y8d.bvLnzls9f/UzpPZpGxj7heVZ1ym\n",
		     "1: user alice: malformed password hash (bad '$' fields)");

	snprintf(content, sizeof(content), "alice:%s\n# again\nbob:%s\nalice:%s\n", h_y, h_6, h_6);
	expect_error(content, "4: duplicate user alice (first on line 1)");

	/* a NUL byte on line 2 */
	snprintf(content, sizeof(content), "alice:%s\nbob:%s\n", h_y, h_6);
	content[strlen(h_y) + 10] = '\0';
	write_file_n(path, sizeof(path), content, strlen(h_y) + 7 + strlen(h_6) + 5);
	assert_null(auth_users_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:2: NUL byte in the file", path);
	assert_string_equal(err, want);

	/* the file as a whole */
	snprintf(path, sizeof(path), "%s/does-not-exist", dir);
	assert_null(auth_users_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:0: cannot open: No such file or directory", path);
	assert_string_equal(err, want);
	assert_null(auth_users_load(dir, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:0: not a regular file", dir);
	assert_string_equal(err, want);
	/* a FIFO is refused at once, not waited on */
	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_null(auth_users_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:0: not a regular file", path);
	assert_string_equal(err, want);
	unlink(path);
	/* a short err buffer is cut, still a string */
	assert_null(auth_users_load(dir, err, 8));
	assert_int_equal(strlen(err), 7);
	/* no error text when it loads */
	snprintf(content, sizeof(content), "alice:%s\n", h_y);
	strcpy(err, "stale");
	t = load(content, path, sizeof(path), err, sizeof(err));
	assert_non_null(t);
	assert_string_equal(err, "");
	auth_users_unref(t);
}

struct stress {
	struct auth_users *t;
	unsigned found;
};

static void *
stress_main(void *arg)
{
	struct stress *s = arg;

	for (int i = 0; i < 100000; i++) {
		struct auth_users *mine = auth_users_ref(s->t);

		s->found += auth_users_lookup(mine, "alice") != NULL;
		auth_users_unref(mine);
	}
	return NULL;
}

static void
test_reload_refcount(void **state)
{
	char content[1024], path[512], err[512];
	struct auth_users *current, *session, *next, *old;
	struct stress st[4];
	pthread_t th[4];

	(void)state;
	snprintf(content, sizeof(content), "alice:%s\n", h_y);		/* alice-pw */
	current = load(content, path, sizeof(path), err, sizeof(err));
	assert_non_null(current);
	/* a session starts a verification with the table in force */
	session = auth_users_ref(current);

	/* reload: alice now has bob's hash */
	snprintf(content, sizeof(content), "alice:%s\n", h_6);		/* bob-pw */
	next = load(content, path, sizeof(path), err, sizeof(err));
	assert_non_null(next);
	old = current;
	current = next;
	auth_users_unref(old);

	/* the session's table is still the old one, whole */
	assert_string_equal(auth_users_lookup(session, "alice"), h_y);
	assert_int_equal(auth_users_check(session, "alice", "alice-pw"), 1);
	assert_int_equal(auth_users_check(current, "alice", "alice-pw"), 0);
	assert_int_equal(auth_users_check(current, "alice", "bob-pw"), 1);
	auth_users_unref(session);	/* the old table goes (ASan: no leak, no use after) */

	/* a failed reload leaves the current table alone */
	assert_null(load("alice\n", path, sizeof(path), err, sizeof(err)));
	assert_string_equal(auth_users_lookup(current, "alice"), h_6);

	/* worker threads taking and dropping references at once */
	for (int i = 0; i < 4; i++) {
		st[i].t = current;
		st[i].found = 0;
		assert_int_equal(pthread_create(&th[i], NULL, stress_main, &st[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		assert_int_equal(st[i].found, 100000);
	}
	assert_string_equal(auth_users_lookup(current, "alice"), h_6);
	auth_users_unref(current);
	auth_users_unref(NULL);
}

/* A big table: every name found, none of the others. */
static void
test_many_users(void **state)
{
	enum { N = 3000 };
	size_t cap = (size_t)N * (strlen(MK_BCRYPT) + 16) + 1, off = 0;
	char *content = malloc(cap), path[512], err[512], name[32];
	struct auth_users *t;

	(void)state;
	assert_non_null(content);
	for (int i = 0; i < N; i++)
		off += (size_t)snprintf(content + off, cap - off, "user%d:%s\n", i, MK_BCRYPT);
	t = load(content, path, sizeof(path), err, sizeof(err));
	free(content);
	if (t == NULL)
		fail_msg("%s", err);
	assert_int_equal(auth_users_count(t), N);
	for (int i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		assert_string_equal(auth_users_lookup(t, name), MK_BCRYPT);
		snprintf(name, sizeof(name), "user%d", i + N);
		assert_null(auth_users_lookup(t, name));
	}
	auth_users_unref(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_and_lookup),
		cmocka_unit_test(test_verify_each_scheme),
		cmocka_unit_test(test_dummy_hash),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_reload_refcount),
		cmocka_unit_test(test_many_users),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
