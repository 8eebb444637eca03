/*
 * test_data_scan.c - unit tests of proxy/data_scan.c: the SMTP smuggling
 * variants published by SEC Consult (2023) and later ones, line-length
 * boundaries, and a randomized comparison of the scanner (fed whole, split
 * at every position, and in random chunks) with a byte-at-a-time model.
 * Every input sits right before a guard page (guard.h).
 *
 * Each test runs once per implementation (data_scan_impl.h: scalar, sse2,
 * avx2, avx512; one the CPU lacks is skipped) and once through data_scan().
 * avx2 and avx512 take 64-octet blocks, so test_blocks puts every kind of line
 * end, dot and bad octet at and around the block edges (from the chunk
 * start) and test_soup throws dense random mixes of them at all of them,
 * also with one stream's chunks going to different implementations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data_scan.h"
#include "data_scan_impl.h"
#include "guard.h"

typedef unsigned char u8;

#define NOT_ENDED ((size_t)-1)
#define GUARD_CAP (256 * 1024)

struct result {
	size_t end;		/* octets of message incl. ".\r\n", or NOT_ENDED */
	uint32_t flags;
	uint64_t first;		/* first_flag_at, meaningful when flags != 0 */
};

static struct guard g;

/* the implementation under test; -1: data_scan() */
static int impl = -1;

static size_t
scan(struct data_scan *s, const char *buf, size_t len)
{
	return impl < 0 ? data_scan(s, buf, len) :
	    data_scan_impl_scan(impl, s, buf, len);
}

/* A test's state is the implementation to run it with (prestate). */
static void
use_impl(void **state)
{
	impl = *(const int *)*state;
	if (impl >= 0 && !data_scan_impl_available(impl)) {
		print_message("%s: not on this CPU, skipped\n",
		    data_scan_impl_name(impl));
		skip();
	}
}

static int
setup(void **state)
{
	(void)state;
	return guard_init(&g, GUARD_CAP);
}

static int
teardown(void **state)
{
	(void)state;
	guard_free(&g);
	return 0;
}

/* ---- the reference model: whole buffer, lookahead, no state machine ---- */

static void
mflag(struct result *r, uint32_t f, size_t at)
{
	if (r->flags == 0)
		r->first = at;
	r->flags |= f;
}

/*
 * Written from the rules, not from the scanner: a line starts after CRLF
 * (or at 0); "." CRLF there is the end; a first '.' otherwise is a
 * stuffed dot and not counted; LF is a line end iff the octet before it
 * is CR, else bare; CR is bare iff the octet after it is not LF (a CR
 * at the end of an unfinished stream is not known to be bare yet).
 */
static void
model(const u8 *b, size_t n, uint32_t max, struct result *r)
{
	size_t i, len = 0;
	int bol = 1;

	if (max == 0)
		max = DATA_LINE_MAX;
	r->end = NOT_ENDED;
	r->flags = 0;
	r->first = 0;
	for (i = 0; i < n; i++) {
		u8 c = b[i];

		if (bol) {
			bol = 0;
			len = 0;
			if (c == '.') {
				if (i + 2 < n && b[i + 1] == '\r' && b[i + 2] == '\n') {
					r->end = i + 3;
					return;
				}
				continue;
			}
		}
		if (++len > max)
			mflag(r, DATA_FLAG_LONG_LINE, i);
		if (c == '\0')
			mflag(r, DATA_FLAG_NUL, i);
		else if (c == '\r' && i + 1 < n && b[i + 1] != '\n')
			mflag(r, DATA_FLAG_BARE_CR, i);
		else if (c == '\n') {
			if (i > 0 && b[i - 1] == '\r')
				bol = 1;
			else
				mflag(r, DATA_FLAG_BARE_LF, i);
		}
	}
}

/* ---- feeding the real scanner ---- */

/*
 * Feeds msg to a fresh scanner in chunks whose ends are cuts[0..ncuts)
 * (ascending, each in 1..len-1) and then len. Each chunk is copied to
 * the guard page on its own, overwriting the previous one, so a scanner
 * that kept a pointer into an old chunk or read past one would fail.
 */
static void
feed(const u8 *msg, size_t len, uint32_t max, const size_t *cuts,
     size_t ncuts, struct result *r)
{
	struct data_scan s;
	size_t pos = 0, next, used, i;
	const char *c;

	data_scan_init(&s, max);
	r->end = NOT_ENDED;
	for (i = 0; i <= ncuts && pos < len; i++) {
		next = i < ncuts ? cuts[i] : len;
		if (next <= pos)
			continue;
		c = guard_copy(&g, msg + pos, next - pos);
		assert_non_null(c);
		used = scan(&s, c, next - pos);
		assert_true(used <= next - pos);
		if (s.done) {
			r->end = pos + used;
			assert_int_equal(s.offset, r->end);
			/* the scanner's last three octets are the terminator */
			assert_true(r->end >= 3);
			assert_memory_equal(msg + r->end - 3, ".\r\n", 3);
			break;
		}
		assert_int_equal(used, next - pos);
		assert_int_equal(s.offset, next);
		pos = next;
	}
	r->flags = s.flags;
	r->first = s.first_flag_at;
}

static void
feed_whole(const void *msg, size_t len, uint32_t max, struct result *r)
{
	feed(msg, len, max, NULL, 0, r);
}

static void
assert_same(const struct result *a, const struct result *b)
{
	assert_int_equal(a->end, b->end);
	assert_int_equal(a->flags, b->flags);
	if (a->flags != 0)
		assert_int_equal(a->first, b->first);
}

/* Whole, split at every position, one octet at a time: all alike. */
static void
check_all_splits(const void *msg, size_t len, uint32_t max,
		 const struct result *want)
{
	struct result r, m;
	size_t k, *cuts;

	model(msg, len, max, &m);
	assert_same(&m, want);
	feed_whole(msg, len, max, &r);
	assert_same(&r, want);
	for (k = 1; k < len; k++) {
		feed(msg, len, max, &k, 1, &r);
		assert_same(&r, want);
	}
	cuts = malloc(len * sizeof(*cuts));
	assert_non_null(cuts);
	for (k = 1; k < len; k++)
		cuts[k - 1] = k;
	feed(msg, len, max, cuts, len > 0 ? len - 1 : 0, &r);
	assert_same(&r, want);
	free(cuts);
}

/* ---- hand cases ---- */

static void
test_init(void **state)
{
	struct data_scan s;

	use_impl(state);
	memset(&s, 0xa5, sizeof(s));
	data_scan_init(&s, 0);
	assert_int_equal(s.max_line, DATA_LINE_MAX);
	assert_int_equal(s.flags, 0);
	assert_int_equal(s.offset, 0);
	assert_int_equal(s.line_len, 0);
	assert_false(s.done);
	data_scan_init(&s, 78);
	assert_int_equal(s.max_line, 78);
	/* an empty chunk consumes nothing and changes nothing */
	assert_int_equal(scan(&s, guard_copy(&g, "", 0), 0), 0);
	assert_int_equal(s.offset, 0);
	assert_false(s.done);
}

static void
test_ends(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		size_t end;
		uint32_t flags;
		uint64_t first;
	} t[] = {
		/* "." CRLF at offset 0: an empty message */
		{ ".\r\n", 3, 3, 0, 0 },
		{ ".\r\nQUIT\r\n", 9, 3, 0, 0 },
		{ "\r\n.\r\n", 5, 5, 0, 0 },
		{ "a\r\n.\r\n", 6, 6, 0, 0 },
		{ "hello\r\nworld\r\n.\r\nMAIL FROM:<x>\r\n", 32, 17, 0, 0 },
		/* stuffed lines are not ends (RFC 5321 4.5.2) */
		{ "..\r\n.\r\n", 7, 7, 0, 0 },
		{ "..\r\n", 4, NOT_ENDED, 0, 0 },
		{ ".a\r\n.\r\n", 7, 7, 0, 0 },
		{ "a.\r\n.\r\n", 7, 7, 0, 0 },
		{ "", 0, NOT_ENDED, 0, 0 },
		{ ".", 1, NOT_ENDED, 0, 0 },
		{ ".\r", 2, NOT_ENDED, 0, 0 },
		{ "a\r\n.\r", 5, NOT_ENDED, 0, 0 },
		/* the first end wins, a later one is not message */
		{ "a\r\n.\r\n.\r\n", 9, 6, 0, 0 },
		/* bad bytes at the very start */
		{ "\n.\r\n.\r\n", 7, 7, DATA_FLAG_BARE_LF, 0 },
		{ ".\n.\r\n", 5, NOT_ENDED, DATA_FLAG_BARE_LF, 1 },
		{ ".\n\r\n.\r\n", 7, 7, DATA_FLAG_BARE_LF, 1 },
		{ ".\r\r\n.\r\n", 7, 7, DATA_FLAG_BARE_CR, 1 },
		{ "\r.\r\n.\r\n", 7, 7, DATA_FLAG_BARE_CR, 0 },
		{ "\0.\r\n.\r\n", 7, 7, DATA_FLAG_NUL, 0 },
		{ ".\0\r\n.\r\n", 7, 7, DATA_FLAG_NUL, 1 },
		/* several flags: first_flag_at is the earliest */
		{ "a\0b\nc\rd\r\n.\r\n", 12, 12,
		  DATA_FLAG_NUL | DATA_FLAG_BARE_LF | DATA_FLAG_BARE_CR, 1 },
		{ "ab\rc\n\0\r\n.\r\n", 11, 11,
		  DATA_FLAG_NUL | DATA_FLAG_BARE_LF | DATA_FLAG_BARE_CR, 2 },
		/* CR CR LF: the first CR is bare, the second ends the line */
		{ "a\r\r\n.\r\n", 7, 7, DATA_FLAG_BARE_CR, 1 },
		/* 8-bit octets and DEL are ordinary */
		{ "\xc3\xa9\xff\x7f\r\n.\r\n", 9, 9, 0, 0 },
	};
	struct result want;
	size_t i;

	use_impl(state);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		want.end = t[i].end;
		want.flags = t[i].flags;
		want.first = t[i].first;
		check_all_splits(t[i].in, t[i].len, 0, &want);
	}
}

/*
 * SEC Consult "SMTP Smuggling" (Dec 2023) and the follow-ups: each fake
 * end is put between an innocent body and a smuggled second transaction.
 * The scanner must not stop at the fake end, must flag it, and must stop
 * at the real end after the smuggled part.
 */
static void
test_smuggling(void **state)
{
	static const char head[] = "From: a@b.example\r\nSubject: hi\r\n\r\nhello";
	static const char tail[] = "MAIL FROM:<evil@x.example>\r\n"
	    "RCPT TO:<victim@y.example>\r\nDATA\r\nFrom: ceo@y.example\r\n"
	    "\r\nsmuggled\r\n.\r\n";
	static const struct {
		const char *name;
		const char *fake;
		size_t len;
		uint32_t flags;
		size_t first;		/* offset of the first flag in fake */
	} t[] = {
		{ "LF.LF", "\n.\n", 3, DATA_FLAG_BARE_LF, 0 },
		{ "LF.CRLF", "\n.\r\n", 4, DATA_FLAG_BARE_LF, 0 },
		{ "CRLF.LF", "\r\n.\n", 4, DATA_FLAG_BARE_LF, 3 },
		{ "CR.CR", "\r.\r", 3, DATA_FLAG_BARE_CR, 0 },
		{ "CR.CRLF", "\r.\r\n", 4, DATA_FLAG_BARE_CR, 0 },
		{ "CR.LF", "\r.\n", 3, DATA_FLAG_BARE_CR | DATA_FLAG_BARE_LF, 0 },
		{ "LF.CR", "\n.\r", 3, DATA_FLAG_BARE_CR | DATA_FLAG_BARE_LF, 0 },
		{ "CRLF.CR", "\r\n.\r", 4, DATA_FLAG_BARE_CR, 3 },
		{ "CRLF.CRCRLF", "\r\n.\r\r\n", 6, DATA_FLAG_BARE_CR, 3 },
		{ "CRLF.CRCR", "\r\n.\r\r", 5, DATA_FLAG_BARE_CR, 3 },
		{ "CRLF LF.CRLF", "\r\n\n.\r\n", 6, DATA_FLAG_BARE_LF, 2 },
		{ "CRCRLF.CRLF bare CR only", "\r\r\n.\r\r\n", 7,
		  DATA_FLAG_BARE_CR, 0 },
		{ "CRLF NUL.CRLF", "\r\n\0.\r\n", 6, DATA_FLAG_NUL, 2 },
		{ "CRLF.NUL CRLF", "\r\n.\0\r\n", 6, DATA_FLAG_NUL, 3 },
		{ "NUL CRLF.CRLF LF", "\0\n.\r\n", 5,
		  DATA_FLAG_NUL | DATA_FLAG_BARE_LF, 0 },
		{ "CRLF.SP CRLF", "\r\n. \r\n", 6, 0, 0 },
	};
	u8 buf[512];
	size_t i, hl = sizeof(head) - 1, tl = sizeof(tail) - 1, n, fake_end;
	struct result r, want;
	struct data_scan s;
	const char *c;

	use_impl(state);
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		n = hl + t[i].len + tl;
		assert_true(n <= sizeof(buf));
		memcpy(buf, head, hl);
		memcpy(buf + hl, t[i].fake, t[i].len);
		memcpy(buf + hl + t[i].len, tail, tl);
		fake_end = hl + t[i].len;

		/* up to the fake end: not done, and the flag is already up */
		data_scan_init(&s, 0);
		c = guard_copy(&g, buf, fake_end);
		assert_int_equal(scan(&s, c, fake_end), fake_end);
		if (s.done)
			fail_msg("%s: ended at the fake end", t[i].name);
		/* a flag on the fake end's last octet may need one more octet */
		c = guard_copy(&g, buf + fake_end, 1);
		assert_int_equal(scan(&s, c, 1), 1);
		assert_false(s.done);
		if (s.flags != t[i].flags)
			fail_msg("%s: flags %#x, want %#x", t[i].name,
			    s.flags, t[i].flags);

		want.end = n;
		want.flags = t[i].flags;
		want.first = hl + t[i].first;
		check_all_splits(buf, n, 0, &want);
		/* and the real end is found in the whole buffer */
		feed_whole(buf, n, 0, &r);
		assert_int_equal(r.end, n);
	}
}

static void
fill_line(u8 *p, size_t n, u8 c)
{
	memset(p, c, n);
}

/* RFC 5321 4.5.3.1.6: 1000 octets with CRLF, a stuffed dot not counted. */
static void
test_line_length(void **state)
{
	static u8 buf[4096];
	struct result want;
	size_t n;

	use_impl(state);
	/* 998 + CRLF = 1000: fine */
	fill_line(buf, 998, 'a');
	memcpy(buf + 998, "\r\n.\r\n", 5);
	want = (struct result){ 1003, 0, 0 };
	check_all_splits(buf, 1003, 0, &want);

	/* 999 + CRLF = 1001: the LF is the 1001st octet */
	fill_line(buf, 999, 'a');
	memcpy(buf + 999, "\r\n.\r\n", 5);
	want = (struct result){ 1004, DATA_FLAG_LONG_LINE, 1000 };
	check_all_splits(buf, 1004, 0, &want);

	/* stuffed: ".." + 997 + CRLF is 1001 on the wire, 1000 counted */
	buf[0] = '.';
	fill_line(buf + 1, 998, '.');
	memcpy(buf + 999, "\r\n.\r\n", 5);
	want = (struct result){ 1004, 0, 0 };
	check_all_splits(buf, 1004, 0, &want);

	/* stuffed, one more: flagged at the LF */
	buf[0] = '.';
	fill_line(buf + 1, 999, 'b');
	memcpy(buf + 1000, "\r\n.\r\n", 5);
	want = (struct result){ 1005, DATA_FLAG_LONG_LINE, 1001 };
	check_all_splits(buf, 1005, 0, &want);

	/* a second line after a good first one; the flag is on the second */
	fill_line(buf, 998, 'x');
	memcpy(buf + 998, "\r\n", 2);
	fill_line(buf + 1000, 1500, 'y');
	memcpy(buf + 2500, "\r\n.\r\n", 5);
	want = (struct result){ 2505, DATA_FLAG_LONG_LINE, 1000 + 1000 };
	check_all_splits(buf, 2505, 0, &want);

	/* a bare LF does not reset the count: 600 + LF + 600 is one line */
	fill_line(buf, 600, 'x');
	buf[600] = '\n';
	fill_line(buf + 601, 600, 'z');
	memcpy(buf + 1201, "\r\n.\r\n", 5);
	want = (struct result){ 1206, DATA_FLAG_BARE_LF | DATA_FLAG_LONG_LINE, 600 };
	check_all_splits(buf, 1206, 0, &want);

	/* a small limit: 8 + CRLF = 10 fits max 10, 9 + CRLF does not */
	n = 0;
	memcpy(buf, "12345678\r\n123456789\r\n.\r\n", 24);
	n = 24;
	want = (struct result){ n, DATA_FLAG_LONG_LINE, 20 };
	check_all_splits(buf, n, 10, &want);
	want = (struct result){ n, 0, 0 };
	check_all_splits(buf, n, 11, &want);
}

/* Offsets keep counting across chunks and across the 4 GB line clamp. */
static void
test_offsets(void **state)
{
	struct data_scan s;
	static u8 big[65536];
	size_t i, used;

	use_impl(state);
	memset(big, 'q', sizeof(big));
	data_scan_init(&s, 0);
	for (i = 0; i < 100; i++) {
		used = scan(&s, guard_copy(&g, big, sizeof(big)), sizeof(big));
		assert_int_equal(used, sizeof(big));
	}
	assert_int_equal(s.offset, 100 * (uint64_t)sizeof(big));
	assert_int_equal(s.flags, DATA_FLAG_LONG_LINE);
	assert_int_equal(s.first_flag_at, 1000);
	used = scan(&s, guard_copy(&g, "\r\n.\r\nX", 6), 6);
	assert_int_equal(used, 5);
	assert_true(s.done);
	assert_int_equal(s.offset, 100 * (uint64_t)sizeof(big) + 5);

	/* line_len saturates instead of wrapping */
	data_scan_init(&s, 0);
	s.line_len = UINT32_MAX - 10;
	s.state = 3;	/* inside a line; white-box, see data_scan.c ST_MID */
	s.flags = DATA_FLAG_LONG_LINE;
	used = scan(&s, guard_copy(&g, big, 100), 100);
	assert_int_equal(used, 100);
	assert_int_equal(s.line_len, UINT32_MAX);
}

/* ---- randomized ---- */

static uint64_t rng_state;

static uint64_t
rnd(void)
{
	/* xorshift64*: fixed seed, reproducible */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t
rnd_below(size_t n)
{
	return (size_t)(rnd() % n);
}

struct msg {
	u8 *buf;
	size_t len, cap;
	size_t end;		/* where the real end is */
	uint32_t flags;		/* what the generator put in */
	uint32_t max;		/* max_line given to the scanner, 0 = default */
};

static void
put(struct msg *m, const void *p, size_t n)
{
	if (m->len + n > m->cap) {
		m->cap = (m->len + n) * 2;
		m->buf = realloc(m->buf, m->cap);
		assert_non_null(m->buf);
	}
	memcpy(m->buf + m->len, p, n);
	m->len += n;
}

static u8
rnd_text_byte(void)
{
	static const char common[] = "abcdefghijklmnopqrstuvwxyz .,:;<>@=-";

	switch (rnd_below(8)) {
	case 0:
		return '.';
	case 1:
		return (u8)(0x80 + rnd_below(128));	/* 8-bit */
	case 2:
		return (u8)(0x20 + rnd_below(95));	/* any printable */
	case 3:
		return '\t';
	default:
		return (u8)common[rnd_below(sizeof(common) - 1)];
	}
}

static size_t
rnd_line_len(int allow_long)
{
	switch (rnd_below(10)) {
	case 0:
		return 0;
	case 1:
		return 996 + rnd_below(3);	/* 996..998: at the limit */
	case 2:
		return allow_long ? 999 + rnd_below(202) : rnd_below(999);
	default:
		return rnd_below(allow_long ? 1201 : 100);
	}
}

/*
 * One random message: lines of random content, some injected bare CR,
 * bare LF or NUL, dot-stuffed, then ".\r\n" and junk after the end.
 * m->flags is what must be flagged, derived from the content alone.
 */
static void
gen_msg(struct msg *m)
{
	static u8 line[1400];
	size_t nlines, i, j, n, k, count;
	int allow_long = rnd_below(3) == 0;
	int inject = rnd_below(4) == 0;
	uint32_t max;

	m->len = 0;
	m->flags = 0;
	m->max = rnd_below(8) == 0 ? (uint32_t)(20 + rnd_below(200)) : 0;
	max = m->max ? m->max : DATA_LINE_MAX;
	nlines = rnd_below(6) == 0 ? rnd_below(60) : rnd_below(8);
	for (i = 0; i < nlines; i++) {
		n = rnd_line_len(allow_long);
		for (j = 0; j < n; j++)
			line[j] = rnd_text_byte();
		if (n > 0 && rnd_below(4) == 0)
			line[0] = '.';	/* must get stuffed */
		if (n > 0 && rnd_below(40) == 0)
			line[n - 1] = '.';
		if (inject && n > 0 && rnd_below(3) == 0) {
			count = 1 + rnd_below(3);
			for (k = 0; k < count; k++) {
				static const u8 bad[] = { '\r', '\n', '\0' };
				line[rnd_below(n)] = bad[rnd_below(3)];
			}
		}
		/* an injected CR then LF would be a real CRLF: break it up */
		for (j = 1; j < n; j++)
			if (line[j] == '\n' && line[j - 1] == '\r')
				line[j] = 'x';
		for (j = 0; j < n; j++) {
			if (line[j] == '\r')
				m->flags |= DATA_FLAG_BARE_CR;
			else if (line[j] == '\n')
				m->flags |= DATA_FLAG_BARE_LF;
			else if (line[j] == '\0')
				m->flags |= DATA_FLAG_NUL;
		}
		/* the counted length: content + CRLF, stuffed dot excluded */
		if (n + 2 > max)
			m->flags |= DATA_FLAG_LONG_LINE;
		if (n > 0 && line[0] == '.')
			put(m, ".", 1);	/* RFC 5321 4.5.2 transparency */
		put(m, line, n);
		put(m, "\r\n", 2);
	}
	put(m, ".\r\n", 3);
	m->end = m->len;
	put(m, "MAIL FROM:<x>\r\n", 15);
	if (rnd_below(2))
		put(m, ".\r\n\r\n.\r\n", 8);
}

static void
test_random(void **state)
{
	struct msg m = { 0 };
	struct result want, got;
	size_t i, k, pos, ncuts, split_work = 0, cuts_cap = 0, *cuts = NULL;
	unsigned clean = 0, flagged = 0, flag_seen = 0, split_msgs = 0;

	use_impl(state);
	rng_state = 0x6d78676174650001ULL;
	for (i = 0; i < 3000; i++) {
		gen_msg(&m);
		assert_true(m.len <= GUARD_CAP);
		model(m.buf, m.len, m.max, &want);
		/* the model agrees with what was generated */
		assert_int_equal(want.end, m.end);
		if (want.flags != m.flags)
			fail_msg("message %zu: model flags %#x, generated %#x",
			    i, want.flags, m.flags);
		if (m.flags == 0)
			clean++;
		else
			flagged++;
		flag_seen |= m.flags;

		/* (a) whole */
		feed_whole(m.buf, m.len, m.max, &got);
		assert_same(&got, &want);

		/* (b) split in two at every position, within a work budget */
		if (m.len <= 2048 && split_work + m.len * m.len < 400000000u) {
			split_work += m.len * m.len;
			split_msgs++;
			for (k = 1; k < m.len; k++) {
				feed(m.buf, m.len, m.max, &k, 1, &got);
				assert_same(&got, &want);
			}
		}

		/* (c) random chunk sizes 1..N */
		for (k = 0; k < 3; k++) {
			size_t maxchunk = k == 0 ? 4 : k == 1 ? 40 : 3000;

			if (cuts_cap < m.len) {
				cuts_cap = m.len * 2;
				cuts = realloc(cuts, cuts_cap * sizeof(*cuts));
				assert_non_null(cuts);
			}
			ncuts = 0;
			for (pos = 1 + rnd_below(maxchunk); pos < m.len;
			     pos += 1 + rnd_below(maxchunk))
				cuts[ncuts++] = pos;
			feed(m.buf, m.len, m.max, cuts, ncuts, &got);
			assert_same(&got, &want);
		}
	}
	/* the generator did exercise both sides and every flag */
	assert_true(clean > 500);
	assert_true(flagged > 500);
	assert_int_equal(flag_seen, DATA_FLAG_BARE_LF | DATA_FLAG_BARE_CR |
	    DATA_FLAG_NUL | DATA_FLAG_LONG_LINE);
	print_message("%u clean, %u flagged, %u split at every position "
	    "(%zu octet-scans)\n", clean, flagged, split_msgs, split_work);
	assert_true(split_msgs > 100);
	free(cuts);
	free(m.buf);
}

/* ---- around the 64-octet blocks ---- */

/* Whole, and split at a few positions that move the block edges. */
static void
check_some_splits(const u8 *msg, size_t len, uint32_t max, size_t extra)
{
	static const size_t at[] = { 1, 2, 3, 31, 32, 33, 63, 64, 65, 127, 128 };
	struct result want, got;
	size_t i, k;

	model(msg, len, max, &want);
	feed_whole(msg, len, max, &got);
	assert_same(&got, &want);
	for (i = 0; i <= sizeof(at) / sizeof(at[0]); i++) {
		k = i < sizeof(at) / sizeof(at[0]) ? at[i] : extra;
		if (k == 0 || k >= len)
			continue;
		feed(msg, len, max, &k, 1, &got);
		assert_same(&got, &want);
	}
	/* the last 64 and 65 octets apart: full blocks, then a tail */
	for (k = 64; k <= 65 && k < len; k++) {
		size_t cut = len - k;

		feed(msg, len, max, &cut, 1, &got);
		assert_same(&got, &want);
	}
}

/* Whole, split anywhere in two, and one octet at a time, vs the model. */
static void
check_splits_model(const u8 *msg, size_t len, uint32_t max)
{
	struct result want;

	model(msg, len, max, &want);
	check_all_splits(msg, len, max, &want);
}

/*
 * Every kind of line end, dot, bad octet and the end itself at each
 * offset 0..140 of the stream, so at and around the block edges 63/64
 * and 127/128 (and, in the splits, of later chunks), after short lines
 * or inside one long line; split at every position near the edges.
 */
static void
test_blocks(void **state)
{
	static const struct {
		const char *s;
		size_t n;
	} pat[] = {
#define P(x) { x, sizeof(x) - 1 }
		P("\r\n"), P("\r\nx"), P("\rx"), P("\r"), P("\nx"), P("\n"),
		P("\0"), P("\0\r\n"), P("\r\0\n"), P("\r\n\0"),
		P("\r\n.x"), P("\r\n."), P("\r\n..\r\n"), P("\r\n.\r\n"),
		P("\r\n.\rx"), P("\r\n.\r"), P("\r\n.\n"), P("\r\n.\0"),
		P("\r\r\n"), P("\r\n\r\n"), P("\r\n\r\n.x"), P("\n.\r\n"),
		P("\r.\r\n"), P(".\r\n"), P("\r\n\n.\r\n"), P("x.\r\n.y"),
#undef P
	};
	static u8 buf[512];
	size_t i, k, n, j, style;

	use_impl(state);
	for (style = 0; style < 3; style++) {
		for (i = 0; i < sizeof(pat) / sizeof(pat[0]); i++) {
			for (k = 0; k <= 140; k++) {
				/* the prefix: short lines, one line, stuffed lines */
				for (j = 0; j < k; j++)
					buf[j] = (u8)('a' + j % 26);
				if (style != 1)
					for (j = 22; j + 1 < k; j += 24) {
						buf[j] = '\r';
						buf[j + 1] = '\n';
						if (style == 2 && j + 2 < k)
							buf[j + 2] = '.';
					}
				n = k;
				memcpy(buf + n, pat[i].s, pat[i].n);
				n += pat[i].n;
				memcpy(buf + n, "tail of the line\r\nand one more "
				    "line of text to pass a block edge\r\n.\r\nQUIT\r\n",
				    75);
				n += 75;
				if (k >= 56 && k <= 72 && style == 0)
					check_splits_model(buf, n, 0);
				else
					check_some_splits(buf, n, 0, k + 1);
				check_some_splits(buf, n, 64, k);
			}
		}
	}
}

/*
 * Lines of max_line - 1, max_line and max_line + 1 counted octets (with
 * CRLF, a stuffed dot not counted), after a first line that puts their
 * start at each offset 0..65, for limits around the block size.
 */
static void
test_line_edges(void **state)
{
	static const uint32_t maxes[] = { 64, 65, 66, 100, 127, 128, 129, 0 };
	static u8 buf[2600];
	size_t mi, sh, n, j, c, cnt, line;
	uint32_t max;
	int stuffed, twice;

	use_impl(state);
	for (mi = 0; mi < sizeof(maxes) / sizeof(maxes[0]); mi++) {
		max = maxes[mi] ? maxes[mi] : DATA_LINE_MAX;
		for (sh = 0; sh <= 65; sh++) {
			for (c = max - 1; c <= max + 1; c++) {
				for (stuffed = 0; stuffed < 2; stuffed++) {
					for (twice = 0; twice < 2; twice++) {
						/* first line: sh octets with its CRLF */
						n = 0;
						if (sh >= 2) {
							memset(buf, 'p', sh - 2);
							memcpy(buf + sh - 2, "\r\n", 2);
							n = sh;
						} else if (sh == 1) {
							continue;	/* no 1-octet line */
						}
						for (line = 0; line <= (size_t)twice; line++) {
							cnt = c - 2;
							if (stuffed)
								buf[n++] = '.';
							for (j = 0; j < cnt; j++)
								buf[n + j] = (u8)('0' + (j + sh) % 10);
							if (stuffed && cnt > 0)
								buf[n] = '.';
							n += cnt;
							memcpy(buf + n, "\r\n", 2);
							n += 2;
						}
						memcpy(buf + n, "ok\r\n.\r\n", 7);
						n += 7;
						check_some_splits(buf, n, maxes[mi], sh);
					}
				}
			}
		}
	}
}

/*
 * Random dense mixes of line ends, dots, bad octets and runs of text,
 * mostly longer than a block, against the model: whole, in random
 * chunks, and for the short ones split at every position; the limit
 * often near 64 so that block-crossing lines hit it.
 */
static size_t
gen_soup(u8 *b, size_t cap)
{
	static const char *tok[] = {
		"\r\n", "\r\n", "\r\n", "\r\n.", "\r\n..", "\r", "\n", "\0x",
		".", ".\r\n", "\r\n.\r\n", "\r\r\n", "\n.", "\r\n\r\n",
	};
	static const size_t tlen[] = { 2, 2, 2, 3, 4, 1, 1, 1, 1, 3, 5, 3, 2, 4 };
	size_t n = 0, target = 1 + rnd_below(rnd_below(4) == 0 ? cap : 300);
	size_t t, k, run;
	int bad = rnd_below(3) == 0;	/* else no lone CR, LF or NUL */

	while (n < target) {
		if (rnd_below(3) == 0) {
			t = rnd_below(sizeof(tok) / sizeof(tok[0]));
			if (!bad && (t == 5 || t == 6 || t == 7 || t == 12))
				continue;
			if (n + tlen[t] > cap)
				break;
			memcpy(b + n, tok[t], tlen[t]);
			n += tlen[t];
		} else {
			run = rnd_below(4) == 0 ? rnd_below(200) : rnd_below(40);
			for (k = 0; k < run && n < cap; k++)
				b[n++] = rnd_text_byte();
		}
	}
	return n;
}

static void
test_soup(void **state)
{
	static const uint32_t maxes[] = { 0, 0, 0, 64, 65, 66, 70, 100, 127, 20, 63 };
	static u8 b[3000];
	struct result want, got;
	size_t i, n, k, pos, ncuts, cuts[3000];
	unsigned ended = 0, flagged = 0;
	uint32_t max;

	use_impl(state);
	rng_state = 0x736f757000000001ULL;
	for (i = 0; i < 20000; i++) {
		n = gen_soup(b, sizeof(b));
		max = maxes[rnd_below(sizeof(maxes) / sizeof(maxes[0]))];
		model(b, n, max, &want);
		ended += want.end != NOT_ENDED;
		flagged += want.flags != 0;
		feed_whole(b, n, max, &got);
		assert_same(&got, &want);
		for (k = 0; k < 3; k++) {
			size_t maxchunk = k == 0 ? 8 : k == 1 ? 100 : 400;

			ncuts = 0;
			for (pos = 1 + rnd_below(maxchunk); pos < n;
			     pos += 1 + rnd_below(maxchunk))
				cuts[ncuts++] = pos;
			feed(b, n, max, cuts, ncuts, &got);
			assert_same(&got, &want);
		}
		if (i % 20 == 0 && n <= 400)
			for (k = 1; k < n; k++) {
				feed(b, n, max, &k, 1, &got);
				assert_same(&got, &want);
			}
	}
	print_message("%u of 20000 ended, %u flagged\n", ended, flagged);
	assert_true(ended > 2000 && flagged > 2000);
}

/*
 * One stream, its chunks handed to random implementations in turn: the
 * scanner state means the same to all of them.
 */
static void
test_mixed_impls(void **state)
{
	static u8 b[3000];
	struct result want;
	struct data_scan s;
	size_t i, n, pos, chunk, used, end;
	int avail[DATA_SCAN_IMPL_COUNT], navail = 0, w;
	const char *c;
	uint32_t max;

	(void)state;
	for (w = 0; w < DATA_SCAN_IMPL_COUNT; w++)
		if (data_scan_impl_available(w))
			avail[navail++] = w;
	assert_true(navail >= 1);
	assert_true(data_scan_impl_available(data_scan_impl_default()));
	assert_false(data_scan_impl_available(-1));
	assert_false(data_scan_impl_available(DATA_SCAN_IMPL_COUNT));
	print_message("implementations here:");
	for (w = 0; w < navail; w++)
		print_message(" %s", data_scan_impl_name(avail[w]));
	print_message("; data_scan() uses %s\n",
	    data_scan_impl_name(data_scan_impl_default()));
	rng_state = 0x6d69786564000001ULL;
	for (i = 0; i < 20000; i++) {
		n = gen_soup(b, sizeof(b));
		max = rnd_below(2) ? 0 : (uint32_t)(60 + rnd_below(10));
		model(b, n, max, &want);
		data_scan_init(&s, max);
		end = NOT_ENDED;
		for (pos = 0; pos < n; pos += chunk) {
			chunk = 1 + rnd_below(rnd_below(2) ? 70 : 300);
			if (chunk > n - pos)
				chunk = n - pos;
			c = guard_copy(&g, b + pos, chunk);
			used = data_scan_impl_scan(avail[rnd_below((size_t)navail)],
			    &s, c, chunk);
			if (s.done) {
				end = pos + used;
				break;
			}
			assert_int_equal(used, chunk);
		}
		assert_int_equal(end, want.end);
		assert_int_equal(s.flags, want.flags);
		if (want.flags != 0)
			assert_int_equal(s.first_flag_at, want.first);
	}
}

/* data_stuffed_dot: the message (final ".\r\n" off) has a line starting with '.'. */
static void
test_stuffed_dot(void **state)
{
	static const struct {
		const char *msg;
		int want;
	} cases[] = {
		{ "", 0 },
		{ ".", 1 },
		{ "..\r\n", 1 },
		{ ".x\r\n", 1 },
		{ "a\r\n", 0 },
		{ "a.b\r\n", 0 },
		{ "a\r\n.b\r\n", 1 },
		{ "a\r\nb.\r\n", 0 },
		{ "a\r\n\r\n..\r\n", 1 },
		{ "Subject: x\r\n\r\nend.\r\n", 0 },
	};
	char msg[4096];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(data_stuffed_dot(cases[i].msg, strlen(cases[i].msg)), cases[i].want);
	/* Random messages of lines, dots anywhere: only a line-leading one counts. */
	for (int round = 0; round < 2000; round++) {
		size_t n = 0;
		int want = 0;

		while (n < sizeof(msg) - 64 && rnd_below(20) != 0) {
			size_t len = rnd_below(40);
			for (size_t k = 0; k < len; k++)
				msg[n + k] = rnd_below(4) == 0 ? '.' : 'a';
			if (len && msg[n] == '.')
				want = 1;
			n += len;
			msg[n++] = '\r';
			msg[n++] = '\n';
		}
		assert_int_equal(data_stuffed_dot(msg, n), want);
	}
}

#define PER_IMPL(f) { #f, f }

int
main(void)
{
	static const struct {
		const char *name;
		CMUnitTestFunction fn;
	} per[] = {
		PER_IMPL(test_init),
		PER_IMPL(test_ends),
		PER_IMPL(test_smuggling),
		PER_IMPL(test_line_length),
		PER_IMPL(test_offsets),
		PER_IMPL(test_random),
		PER_IMPL(test_blocks),
		PER_IMPL(test_line_edges),
		PER_IMPL(test_soup),
	};
	enum { NPER = sizeof(per) / sizeof(per[0]) };
	/* -1: data_scan() itself, then each implementation */
	static int which[DATA_SCAN_IMPL_COUNT + 1];
	static char names[(DATA_SCAN_IMPL_COUNT + 1) * NPER][64];
	static struct CMUnitTest tests[(DATA_SCAN_IMPL_COUNT + 1) * NPER + 2];
	size_t i, n = 0;
	int w;

	for (w = -1; w < DATA_SCAN_IMPL_COUNT; w++) {
		which[w + 1] = w;
		for (i = 0; i < NPER; i++) {
			snprintf(names[n], sizeof(names[n]), "%s/%s", per[i].name,
			    w < 0 ? "data_scan" : data_scan_impl_name(w));
			tests[n] = (struct CMUnitTest){ .name = names[n],
			    .test_func = per[i].fn, .initial_state = &which[w + 1] };
			n++;
		}
	}
	tests[n++] = (struct CMUnitTest){ .name = "test_mixed_impls",
	    .test_func = test_mixed_impls };
	tests[n++] = (struct CMUnitTest){ .name = "test_stuffed_dot",
	    .test_func = test_stuffed_dot };
	return _cmocka_run_group_tests("test_data_scan", tests, n, setup,
	    teardown);
}
