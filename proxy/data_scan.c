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
 * Implementations (data_scan_impl.h), all exact, all on the one state
 * machine below; data_scan() picks the fastest the CPU has, once:
 *  - scalar: the state machine alone, any CPU.
 *  - sse2: its inside-a-line loop looks for the next CR, LF or NUL
 *    sixteen or thirty-two octets at a time (the x86-64 baseline).
 *  - avx2: takes 64 octets at a time as bit masks of LF, CR, NUL and
 *    '.' and consumes a block whole when it is "clean" (see
 *    scan_blocks: every CR with its LF, no NUL, no stuffed-dot line that
 *    could be an end, no line over max_line, or only anomalies already
 *    flagged); any other block, the tail of a chunk under 64 octets and
 *    max_line < 64 go through the state machine (with sse2's search).
 *  - avx512: avx2's blocks, but AVX-512BW compares give the four masks
 *    directly, so a block is one load, four compares and a few scalar
 *    tests (28 against 23 GB/s on hot 78-octet lines; in mxgate at 1 MB
 *    messages 91 against 128 us of scanning a message, perf), and a
 *    masked load takes the last octets of a chunk of any size as one
 *    block. Only where 512-bit instructions do not slow the core down.
 *    Built with target attributes, so the rest of the file and the
 *    build flags stay baseline x86-64.
 * None reads outside buf[0..len).
 */
#include <string.h>
#include "data_scan.h"
#include "data_scan_impl.h"
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__) && defined(__SSE2__)
#include <immintrin.h>
#define HAVE_AVX2 1
#define TARGET_AVX2 __attribute__((target("avx2,bmi,bmi2,popcnt")))
/* A superset of TARGET_AVX2's, so block_exact inlines into it. */
#define TARGET_AVX512 __attribute__((target("avx2,bmi,bmi2,popcnt,avx512f,avx512bw")))
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

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

static ALWAYS_INLINE void
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
static ALWAYS_INLINE void
add_len(struct data_scan *s, uint32_t *len, uint64_t n, uint64_t at)
{
	uint64_t nl = (uint64_t)*len + n;

	if (nl > s->max_line && !(s->flags & DATA_FLAG_LONG_LINE))
		raise_flag(s, DATA_FLAG_LONG_LINE, at + (s->max_line - *len));
	*len = nl > UINT32_MAX ? UINT32_MAX : (uint32_t)nl;
}

typedef const unsigned char *(*find_fn)(const unsigned char *,
    const unsigned char *);

/* The first CR, LF or NUL in [p, end), or end: an octet at a time. */
static ALWAYS_INLINE const unsigned char *
find_special_scalar(const unsigned char *p, const unsigned char *end)
{
	while (p < end && *p != '\r' && *p != '\n' && *p != '\0')
		p++;
	return p;
}

#ifdef __SSE2__
/* The same, sixteen or thirty-two octets at a time. */
static ALWAYS_INLINE const unsigned char *
find_special_sse2(const unsigned char *p, const unsigned char *end)
{
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
	return find_special_scalar(p, end);
}
#endif

/*
 * The exact state machine over buf from p on. It stops at the end of
 * the data (*done set, the result is just past it), at end, or once it
 * is at or past lim (lim <= end) in a state the block scanner can take
 * over (BOL, MID or CR); with lim == end it runs to the end. start and
 * base map a pointer to its stream offset.
 */
static ALWAYS_INLINE const unsigned char *
scan_exact(struct data_scan *s, uint32_t *statep, uint32_t *llenp,
	   const unsigned char *p, const unsigned char *lim,
	   const unsigned char *end, const unsigned char *start,
	   uint64_t base, int *done, find_fn find)
{
	uint32_t state = *statep, llen = *llenp;
	const unsigned char *q;

/* stream offset of a pointer into buf */
#define OFF(ptr) (base + (uint64_t)((ptr) - start))

	while (p < end) {
		if (p >= lim && state != ST_DOT && state != ST_DOT_CR)
			break;
		switch (state) {
		case ST_MID:
			/*
			 * The hot loop: skip ordinary octets, and handle the
			 * common CRLF + non-dot line start without leaving it.
			 * Here p < lim.
			 */
			for (;;) {
				q = find(p, lim);
				add_len(s, &llen, (uint64_t)(q - p), OFF(p));
				p = q;
				if (p == lim)
					goto next;
				if (*p != '\r' || end - p < 3 || p[1] != '\n' ||
				    p[2] == '.')
					break;
				add_len(s, &llen, 2, OFF(p));
				llen = 0;
				p += 2;
				if (p >= lim)
					goto next;	/* MID: p[0] is no dot */
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
				*done = 1;
				*statep = ST_BOL;
				*llenp = 0;
				return p;
			}
			raise_flag(s, DATA_FLAG_BARE_CR, OFF(p) - 1);
			state = ST_MID;
			break;
		}
next:		;
	}
#undef OFF
	*statep = state;
	*llenp = llen;
	return p;
}

/* Stores the result of a scan that stopped at p; returns data_scan's. */
static ALWAYS_INLINE size_t
finish(struct data_scan *s, uint32_t state, uint32_t llen, int done,
       const unsigned char *p, const unsigned char *start, size_t len)
{
	s->state = state;
	s->line_len = llen;
	if (done) {
		s->done = 1;
		s->offset += (uint64_t)(p - start);
		return (size_t)(p - start);
	}
	s->offset += len;
	return len;
}

static ALWAYS_INLINE size_t
scan_plain(struct data_scan *s, const char *buf, size_t len, find_fn find)
{
	const unsigned char *start = (const unsigned char *)buf;
	const unsigned char *end = start + len, *p;
	uint32_t state = s->state, llen = s->line_len;
	int done = 0;

	p = scan_exact(s, &state, &llen, start, end, end, start, s->offset,
	    &done, find);
	return finish(s, state, llen, done, p, start, len);
}

static size_t
scan_scalar(struct data_scan *s, const char *buf, size_t len)
{
	return scan_plain(s, buf, len, find_special_scalar);
}

#ifdef __SSE2__
static size_t
scan_sse2(struct data_scan *s, const char *buf, size_t len)
{
	return scan_plain(s, buf, len, find_special_sse2);
}
#endif

#ifdef HAVE_AVX2
/* Bit i set where octet i of the 64 in a, b equals c's. */
static ALWAYS_INLINE TARGET_AVX2 uint64_t
mask64(__m256i a, __m256i b, __m256i c)
{
	uint32_t lo = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, c));
	uint32_t hi = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(b, c));

	return (uint64_t)lo | ((uint64_t)hi << 32);
}

/*
 * The block scanner's state between blocks: the state machine's BOL,
 * MID or CR with its line length.
 */
struct blk {
	uint64_t ll;	/* line_len, not saturated */
	uint64_t ccr;	/* 1: state CR, the octet before the block is a CR */
	uint64_t cbol;	/* 1: state BOL */
};

/* The state machine's BOL, MID or CR and line length as a struct blk. */
static ALWAYS_INLINE struct blk
blk_enter(uint32_t state, uint32_t llen)
{
	return (struct blk){ llen, state == ST_CR, state == ST_BOL };
}

/* Back to the state machine's, the line length saturated. */
static ALWAYS_INLINE void
blk_leave(const struct blk *b, uint32_t *statep, uint32_t *llenp)
{
	*statep = b->ccr ? ST_CR : b->cbol ? ST_BOL : ST_MID;
	*llenp = b->ll > UINT32_MAX ? UINT32_MAX : (uint32_t)b->ll;
}

/* The longest line allowed: none once the long-line flag is up. */
static ALWAYS_INLINE uint64_t
blk_cap(const struct data_scan *s, uint32_t allowed)
{
	return (allowed & DATA_FLAG_LONG_LINE) ? UINT64_MAX : s->max_line;
}

/*
 * Decides whether a block of n octets (1..64), given as bit masks (bit
 * i: octet i is LF, CR, '.', NUL; no bits at n or above), is "clean"
 * and if so advances b over it as the state machine would, and returns
 * 1; else returns 0 and leaves b alone. With crs = cr << 1 | b->ccr (bit
 * i: the octet before i is a CR), the line ends are eol = lf & crs, the
 * line starts eol << 1 | b->cbol, the stuffed dots db those with a '.'.
 * Clean means:
 *  - no NUL, bare LF (lf & ~crs) or bare CR (crs & ~lf), unless that
 *    flag is up already (in `allowed`): then such an octet is ordinary,
 *    as in the state machine, and the first-flag offset is settled;
 *  - no stuffed dot followed by CR (the end, or a bare CR), also not in
 *    the last octet: then next_cr says whether the octet after the
 *    block is a CR or unknown (not in the chunk);
 *  - no line over cap: the block's first line has b->ll + its octets
 *    here, lines wholly inside the block have at most 63 octets and cap
 *    >= 64, the unfinished last one is checked at its length after the
 *    block; a stuffed dot does not count.
 * A CR in the last octet leaves state CR (its LF, or not, comes next);
 * an LF there that ends a line leaves state BOL; a stuffed dot there
 * (not followed by CR) leaves MID with nothing counted, as the state
 * machine has after the dot and the octet after it.
 */
static ALWAYS_INLINE TARGET_AVX2 int
block_exact(struct blk *b, uint64_t lf, uint64_t cr, uint64_t dot,
	    uint64_t nul, unsigned n, int next_cr, uint32_t allowed,
	    uint64_t cap)
{
	uint64_t top = 1ULL << (n - 1), valid = top | (top - 1);
	uint64_t crs = ((cr << 1) | b->ccr) & valid;
	uint64_t eol = lf & crs, db, nll;
	unsigned f, l;

	if (nul != 0 && !(allowed & DATA_FLAG_NUL))
		return 0;
	if (!(allowed & DATA_FLAG_BARE_LF) && (lf & ~crs) != 0)
		return 0;
	if (!(allowed & DATA_FLAG_BARE_CR) && (crs & ~lf) != 0)
		return 0;
	db = dot & ((eol << 1) | b->cbol) & valid;
	if (db & ((cr >> 1) | (next_cr ? top : 0)))
		return 0;
	if (eol != 0) {
		f = (unsigned)__builtin_ctzll(eol);
		l = 63u - (unsigned)__builtin_clzll(eol);
		/* db & 1: a stuffed dot in octet 0 (then ll is 0) */
		if (b->ll + f + 1 - (db & 1) > cap)
			return 0;
		/* the octets after the last line end, less a stuffed dot */
		nll = (n - 1) - l - ((db >> l) >> 1 & 1);
	} else {
		nll = b->ll + n - (db & 1);
	}
	if (nll > cap)
		return 0;
	b->ll = nll;
	b->cbol = (eol & top) != 0;
	b->ccr = (cr & top) != 0;
	return 1;
}

/*
 * Consumes clean blocks (see block_exact) from p: 64 octets at a time
 * while more than 64 are left, then the last up to 64 as one block when
 * the chunk has 64 octets to load them from. Returns where it stopped:
 * end, or the start of a block that is not clean, for the state machine
 * to do. Enter in state BOL, MID or CR with max_line >= 64 only; leaves
 * *statep and *llenp as the state machine would after the same octets.
 *
 * The common block needs no block_exact: it has no NUL, every CR right
 * before an LF and every LF right after a CR (lf == crs), no LF before
 * a '.' (compared in the vectors against the octets one further, so
 * this reads up to p[64]: hence "more than 64") and no '.' in octet 0
 * in state BOL, so no stuffed dot; and its line length was at most
 * cap - 64 before it, so no line in it can be too long. Any other goes
 * to block_exact, which may still find it clean.
 * `allowed` is s->flags at entry, a constant 0 in the inlined copy for
 * the unflagged stream.
 */
static ALWAYS_INLINE TARGET_AVX2 const unsigned char *
scan_blocks(struct data_scan *s, uint32_t *statep, uint32_t *llenp,
	    const unsigned char *p, const unsigned char *start,
	    const unsigned char *end, const uint32_t allowed)
{
	const __m256i vlf = _mm256_set1_epi8('\n');
	const __m256i vcr = _mm256_set1_epi8('\r');
	const __m256i vdot = _mm256_set1_epi8('.');
	const __m256i zero = _mm256_setzero_si256();
	const uint64_t cap = blk_cap(s, allowed);
	const uint64_t capm = cap - 64;	/* cap >= 64 */
	struct blk b = blk_enter(*statep, *llenp);
	__m256i va, vb;
	uint64_t lf, cr;
	unsigned n;

	while (end - p > 64) {
		va = _mm256_loadu_si256((const __m256i *)p);
		vb = _mm256_loadu_si256((const __m256i *)(p + 32));
		__m256i lfa = _mm256_cmpeq_epi8(va, vlf);
		__m256i lfb = _mm256_cmpeq_epi8(vb, vlf);
		__m256i cra = _mm256_cmpeq_epi8(va, vcr);
		__m256i crb = _mm256_cmpeq_epi8(vb, vcr);
		__m256i nul = _mm256_or_si256(_mm256_cmpeq_epi8(va, zero),
		    _mm256_cmpeq_epi8(vb, zero));

		lf = (uint64_t)(uint32_t)_mm256_movemask_epi8(lfa) |
		    ((uint64_t)(uint32_t)_mm256_movemask_epi8(lfb) << 32);
		if (lf == 0) {
			/* inside a line: clean without CR or NUL */
			__m256i odd = _mm256_or_si256(nul,
			    _mm256_or_si256(cra, crb));

			if (_mm256_testz_si256(odd, odd) && (b.ccr | b.cbol) == 0 &&
			    b.ll <= capm) {
				b.ll += 64;
				p += 64;
				continue;
			}
		} else {
			__m256i na = _mm256_loadu_si256((const __m256i *)(p + 1));
			__m256i nb = _mm256_loadu_si256((const __m256i *)(p + 33));
			__m256i odd = _mm256_or_si256(nul, _mm256_or_si256(
			    _mm256_and_si256(lfa, _mm256_cmpeq_epi8(na, vdot)),
			    _mm256_and_si256(lfb, _mm256_cmpeq_epi8(nb, vdot))));

			cr = (uint64_t)(uint32_t)_mm256_movemask_epi8(cra) |
			    ((uint64_t)(uint32_t)_mm256_movemask_epi8(crb) << 32);
			if (lf == ((cr << 1) | b.ccr) &&
			    _mm256_testz_si256(odd, odd) &&
			    !(b.cbol && p[0] == '.') && b.ll <= capm) {
				b.ll = (uint64_t)__builtin_clzll(lf);
				b.cbol = lf >> 63;
				b.ccr = cr >> 63;
				p += 64;
				continue;
			}
		}
		if (!block_exact(&b, lf, mask64(va, vb, vcr),
		    mask64(va, vb, vdot), mask64(va, vb, zero), 64,
		    p[64] == '\r', allowed, cap))
			goto out;
		p += 64;
	}
	n = (unsigned)(end - p);
	if (n > 0 && end - start >= 64) {
		/* the last n octets: the 64 up to end, shifted to p */
		unsigned sh = 64 - n;

		va = _mm256_loadu_si256((const __m256i *)(end - 64));
		vb = _mm256_loadu_si256((const __m256i *)(end - 32));
		if (block_exact(&b, mask64(va, vb, vlf) >> sh,
		    mask64(va, vb, vcr) >> sh, mask64(va, vb, vdot) >> sh,
		    mask64(va, vb, zero) >> sh, n, 1, allowed, cap))
			p = end;
	}
out:
	blk_leave(&b, statep, llenp);
	return p;
}

/* scan_blocks for the unflagged stream (allowed a constant 0) and the rest. */
static TARGET_AVX2 const unsigned char *
scan_blocks_avx2(struct data_scan *s, uint32_t *statep, uint32_t *llenp,
		 const unsigned char *p, const unsigned char *start,
		 const unsigned char *end)
{
	if (s->flags == 0)
		return scan_blocks(s, statep, llenp, p, start, end, 0);
	return scan_blocks(s, statep, llenp, p, start, end, s->flags);
}

/*
 * scan_blocks with AVX-512BW: the compares give the masks block_exact
 * takes, without movemask or the vectors shifted by one. The common
 * block is the one scan_blocks takes without block_exact, less its
 * limits: a dot right after an LF is found in the masks (lf << 1 & dot),
 * so an LF in octet 63 needs no look at octet 64, and a block without
 * LF may start a line. The last 1..64 octets are one masked load, which
 * reads (and faults on) none of the octets masked off. Enters and leaves
 * as scan_blocks does.
 */
static ALWAYS_INLINE TARGET_AVX512 const unsigned char *
scan_blocks512(struct data_scan *s, uint32_t *statep, uint32_t *llenp,
	       const unsigned char *p, const unsigned char *end,
	       const uint32_t allowed)
{
	const __m512i vlf = _mm512_set1_epi8('\n');
	const __m512i vcr = _mm512_set1_epi8('\r');
	const __m512i vdot = _mm512_set1_epi8('.');
	const uint64_t cap = blk_cap(s, allowed);
	const uint64_t capm = cap - 64;	/* cap >= 64 */
	struct blk b = blk_enter(*statep, *llenp);
	uint64_t lf, cr, dot, nul, k;
	__m512i v;
	unsigned n;

	while (end - p >= 64) {
		v = _mm512_loadu_si512((const void *)p);
		lf = _mm512_cmpeq_epi8_mask(v, vlf);
		cr = _mm512_cmpeq_epi8_mask(v, vcr);
		nul = _mm512_testn_epi8_mask(v, v);
		dot = _mm512_cmpeq_epi8_mask(v, vdot);
		if (((lf ^ ((cr << 1) | b.ccr)) | nul |
		    (dot & ((lf << 1) | b.cbol))) == 0 && b.ll <= capm) {
			/* the octets after the last LF, or the line goes on */
			b.ll = lf ? (uint64_t)__builtin_clzll(lf) : b.ll + 64;
			b.cbol = lf >> 63;
			b.ccr = cr >> 63;
			p += 64;
			continue;
		}
		if (!block_exact(&b, lf, cr, dot, nul, 64,
		    end - p > 64 ? p[64] == '\r' : 1, allowed, cap))
			goto out;
		p += 64;
	}
	if (p < end) {
		n = (unsigned)(end - p);
		k = (1ULL << n) - 1;
		v = _mm512_maskz_loadu_epi8(k, p);
		if (block_exact(&b, _mm512_mask_cmpeq_epi8_mask(k, v, vlf),
		    _mm512_mask_cmpeq_epi8_mask(k, v, vcr),
		    _mm512_mask_cmpeq_epi8_mask(k, v, vdot),
		    _mm512_mask_testn_epi8_mask(k, v, v), n, 1, allowed, cap))
			p = end;
	}
out:
	blk_leave(&b, statep, llenp);
	return p;
}

static TARGET_AVX512 const unsigned char *
scan_blocks_avx512(struct data_scan *s, uint32_t *statep, uint32_t *llenp,
		   const unsigned char *p, const unsigned char *start,
		   const unsigned char *end)
{
	(void)start;
	if (s->flags == 0)
		return scan_blocks512(s, statep, llenp, p, end, 0);
	return scan_blocks512(s, statep, llenp, p, end, s->flags);
}

typedef const unsigned char *(*blocks_fn)(struct data_scan *, uint32_t *,
    uint32_t *, const unsigned char *, const unsigned char *,
    const unsigned char *);

/*
 * The block scanners' driver: blocks while the state machine is in
 * BOL, MID or CR, the state machine for a block that is not clean (or
 * a short tail blocks left) and through a dot at a line start.
 */
static ALWAYS_INLINE size_t
scan_blocked(struct data_scan *s, const char *buf, size_t len,
	     blocks_fn blocks)
{
	const unsigned char *start = (const unsigned char *)buf;
	const unsigned char *end = start + len, *p = start, *lim;
	uint64_t base = s->offset;
	uint32_t state = s->state, llen = s->line_len;
	int done = 0;

	if (s->max_line < 64)
		return scan_plain(s, buf, len, find_special_sse2);
	while (p < end) {
		if (state == ST_DOT || state == ST_DOT_CR) {
			lim = p;	/* just until out of the dot states */
		} else {
			p = blocks(s, &state, &llen, p, start, end);
			if (p == end)
				break;
			/* a block that is not clean, or a short chunk */
			lim = end - p > 64 ? p + 64 : end;
		}
		p = scan_exact(s, &state, &llen, p, lim, end, start, base,
		    &done, find_special_sse2);
		if (done)
			break;
	}
	return finish(s, state, llen, done, p, start, len);
}

static TARGET_AVX2 size_t
scan_avx2(struct data_scan *s, const char *buf, size_t len)
{
	return scan_blocked(s, buf, len, scan_blocks_avx2);
}

static TARGET_AVX512 size_t
scan_avx512(struct data_scan *s, const char *buf, size_t len)
{
	return scan_blocked(s, buf, len, scan_blocks_avx512);
}
#endif

typedef size_t (*scan_fn)(struct data_scan *, const char *, size_t);

static const struct {
	const char *name;
	scan_fn fn;
} impls[DATA_SCAN_IMPL_COUNT] = {
	[DATA_SCAN_IMPL_SCALAR] = { "scalar", scan_scalar },
#ifdef __SSE2__
	[DATA_SCAN_IMPL_SSE2] = { "sse2", scan_sse2 },
#endif
#ifdef HAVE_AVX2
	[DATA_SCAN_IMPL_AVX2] = { "avx2", scan_avx2 },
	[DATA_SCAN_IMPL_AVX512] = { "avx512", scan_avx512 },
#endif
};

int
data_scan_impl_available(int which)
{
	if (which < 0 || which >= DATA_SCAN_IMPL_COUNT ||
	    impls[which].fn == NULL)
		return 0;
#ifdef HAVE_AVX2
	if (which == DATA_SCAN_IMPL_AVX2) {
		__builtin_cpu_init();
		return __builtin_cpu_supports("avx2") &&
		    __builtin_cpu_supports("bmi") &&
		    __builtin_cpu_supports("bmi2") &&
		    __builtin_cpu_supports("popcnt");
	}
	/*
	 * VBMI2 marks Ice Lake, Zen 4 and later: on the Skylake-SP generation
	 * 512-bit instructions lower the core's clock for everything that
	 * runs on it, which would cost more than the scanner gains.
	 */
	if (which == DATA_SCAN_IMPL_AVX512)
		return data_scan_impl_available(DATA_SCAN_IMPL_AVX2) &&
		    __builtin_cpu_supports("avx512f") &&
		    __builtin_cpu_supports("avx512bw") &&
		    __builtin_cpu_supports("avx512vbmi2");
#endif
	return 1;
}

const char *
data_scan_impl_name(int which)
{
	if (which < 0 || which >= DATA_SCAN_IMPL_COUNT ||
	    impls[which].name == NULL)
		return "?";
	return impls[which].name;
}

int
data_scan_impl_default(void)
{
	static int best = -1;	/* decided once; a race decides alike */
	int w = __atomic_load_n(&best, __ATOMIC_RELAXED);

	if (w < 0) {
		for (w = DATA_SCAN_IMPL_COUNT - 1; w > 0; w--)
			if (data_scan_impl_available(w))
				break;
		__atomic_store_n(&best, w, __ATOMIC_RELAXED);
	}
	return w;
}

size_t
data_scan_impl_scan(int which, struct data_scan *s, const char *buf,
		    size_t len)
{
	return impls[which].fn(s, buf, len);
}

size_t
data_scan(struct data_scan *s, const char *buf, size_t len)
{
	return impls[data_scan_impl_default()].fn(s, buf, len);
}

/*
 * Only after CRLF does a line start: the scanner has refused any bare LF
 * by the time a message is whole, so "\n." finds every stuffed dot.
 */
int
data_stuffed_dot(const char *msg, size_t n)
{
	return n && (msg[0] == '.' || memmem(msg, n, "\n.", 2) != NULL);
}
