/*
 * data_scan.c - owns the end-of-data scanner for the dot-stuffed DATA
 * stream (RFC 5321 4.1.1.4, 4.5.2). A resumable state machine: the only
 * end it accepts is CRLF "." CRLF, or "." CRLF at stream offset 0, and
 * it flags every byte another receiver could read as a line break or an
 * end (SMTP smuggling, SEC Consult 2023): bare LF, bare CR, NUL, and
 * lines longer than max_line (RFC 5321 4.5.3.1.6).
 *
 * Semantics, which tests/unit/test_data_scan.c pins down:
 *  - Only CRLF ends a line. A bare LF (not preceded by CR) is flagged and
 *    then is an ordinary octet of the current line, so it never starts a
 *    new line: "\n.\r\n" after it is not an end. Likewise a bare CR (not
 *    followed by LF) is flagged, at the offset of the CR, and is ordinary.
 *  - Line length counts every octet including the CRLF, except the first
 *    dot of a line that starts with '.' (the stuffed dot, 4.5.2).
 *  - first_flag_at is the stream offset of the octet that raised the
 *    first flag (for a long line: the first octet past max_line).
 *
 * The hot path looks inside a line for the next CR, LF or NUL sixteen or
 * thirty-two octets at a time with SSE2 and never reads past buf + len.
 */
#include <string.h>
#include "data_scan.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum {
	ST_BOL = 0,	/* at the start of a line (also the stream start) */
	ST_DOT,		/* the line so far is "." */
	ST_DOT_CR,	/* the line so far is ".\r": LF here ends the data */
	ST_MID,		/* inside a line */
	ST_CR,		/* inside a line, the last octet was CR */
};

void
data_scan_init(struct data_scan *s, uint32_t max_line)
{
	memset(s, 0, sizeof(*s));
	s->state = ST_BOL;
	s->max_line = max_line ? max_line : DATA_LINE_MAX;
}

static inline void
raise_flag(struct data_scan *s, uint32_t flag, uint64_t at)
{
	if (s->flags == 0)
		s->first_flag_at = at;
	s->flags |= flag;
}

/*
 * Adds n octets, the first at stream offset at, to the line length
 * *len. A LONG_LINE flag is raised once (the flags word remembers it);
 * the length saturates so a multi-gigabyte line cannot wrap it.
 */
static inline void
add_len(struct data_scan *s, uint32_t *len, uint64_t n, uint64_t at)
{
	uint64_t nl = (uint64_t)*len + n;

	if (nl > s->max_line && !(s->flags & DATA_FLAG_LONG_LINE))
		raise_flag(s, DATA_FLAG_LONG_LINE, at + (s->max_line - *len));
	*len = nl > UINT32_MAX ? UINT32_MAX : (uint32_t)nl;
}

/* The first CR, LF or NUL in [p, end), or end. */
static inline const unsigned char *
find_special(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
	const __m128i cr = _mm_set1_epi8('\r');
	const __m128i lf = _mm_set1_epi8('\n');
	const __m128i zero = _mm_setzero_si128();

	while (end - p >= 32) {
		__m128i a = _mm_loadu_si128((const __m128i *)p);
		__m128i b = _mm_loadu_si128((const __m128i *)(p + 16));
		__m128i ma = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, cr),
		    _mm_cmpeq_epi8(a, lf)), _mm_cmpeq_epi8(a, zero));
		__m128i mb = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(b, cr),
		    _mm_cmpeq_epi8(b, lf)), _mm_cmpeq_epi8(b, zero));
		unsigned m = (unsigned)_mm_movemask_epi8(ma) |
		    ((unsigned)_mm_movemask_epi8(mb) << 16);
		if (m != 0)
			return p + __builtin_ctz(m);
		p += 32;
	}
	if (end - p >= 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)p);
		__m128i ma = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(a, cr),
		    _mm_cmpeq_epi8(a, lf)), _mm_cmpeq_epi8(a, zero));
		unsigned m = (unsigned)_mm_movemask_epi8(ma);
		if (m != 0)
			return p + __builtin_ctz(m);
		p += 16;
	}
#endif
	while (p < end && *p != '\r' && *p != '\n' && *p != '\0')
		p++;
	return p;
}

size_t
data_scan(struct data_scan *s, const char *buf, size_t len)
{
	const unsigned char *start = (const unsigned char *)buf;
	const unsigned char *p = start, *end = start + len, *q;
	uint64_t base = s->offset;
	uint32_t state = s->state, llen = s->line_len;

/* stream offset of a pointer into buf */
#define OFF(ptr) (base + (uint64_t)((ptr) - start))

	while (p < end) {
		switch (state) {
		case ST_MID:
			/*
			 * The hot loop: skip ordinary octets, and handle the
			 * common CRLF + non-dot line start without leaving it.
			 */
			for (;;) {
				q = find_special(p, end);
				add_len(s, &llen, (uint64_t)(q - p), OFF(p));
				p = q;
				if (p == end)
					goto out;
				if (*p != '\r' || end - p < 3 || p[1] != '\n' ||
				    p[2] == '.')
					break;
				add_len(s, &llen, 2, OFF(p));
				llen = 0;
				p += 2;
			}
			add_len(s, &llen, 1, OFF(p));
			if (*p == '\r') {
				state = ST_CR;
			} else if (*p == '\n') {
				/* RFC 5321 2.3.8: LF alone is not a line end */
				raise_flag(s, DATA_FLAG_BARE_LF, OFF(p));
			} else {
				raise_flag(s, DATA_FLAG_NUL, OFF(p));
			}
			p++;
			break;
		case ST_CR:
			if (*p == '\n') {
				add_len(s, &llen, 1, OFF(p));
				p++;
				llen = 0;
				state = ST_BOL;
			} else {
				/* the CR was bare; the octet here is re-read in MID */
				raise_flag(s, DATA_FLAG_BARE_CR, OFF(p) - 1);
				state = ST_MID;
			}
			break;
		case ST_BOL:
			if (*p == '.') {
				/* RFC 5321 4.5.2: a stuffed dot does not count */
				p++;
				state = ST_DOT;
			} else {
				state = ST_MID;
			}
			break;
		case ST_DOT:
			if (*p == '\r') {
				add_len(s, &llen, 1, OFF(p));
				p++;
				state = ST_DOT_CR;
			} else {
				state = ST_MID;
			}
			break;
		case ST_DOT_CR:
			if (*p == '\n') {
				p++;
				s->done = 1;
				s->state = ST_BOL;
				s->line_len = 0;
				s->offset = OFF(p);
				return (size_t)(p - start);
			}
			raise_flag(s, DATA_FLAG_BARE_CR, OFF(p) - 1);
			state = ST_MID;
			break;
		}
	}
out:
#undef OFF
	s->state = state;
	s->line_len = llen;
	s->offset = base + len;
	return len;
}
