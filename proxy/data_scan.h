/*
 * data_scan.h - the end-of-data scanner for the SMTP DATA stream
 * (dot-stuffed, as on the wire). A pure state machine: feed it the
 * stream in chunks of any size, split anywhere; it finds the one real
 * end, CRLF "." CRLF (or "." CRLF at the very start), and flags
 * anything a receiver could read differently (SMTP smuggling): a bare
 * LF, a bare CR, a NUL, or a line over the limit. It never stops at
 * anything but the real end, so after a flag the caller reads on to
 * that end and refuses the message.
 */
#ifndef PROXY_DATA_SCAN_H
#define PROXY_DATA_SCAN_H

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 4.5.3.1.6: a text line is at most 1000 octets with CRLF. */
#define DATA_LINE_MAX 1000

enum data_flag {
	DATA_FLAG_BARE_LF = 1u << 0,
	DATA_FLAG_BARE_CR = 1u << 1,
	DATA_FLAG_NUL = 1u << 2,
	DATA_FLAG_LONG_LINE = 1u << 3,
};

struct data_scan {
	uint32_t state;		/* internal */
	uint32_t line_len;	/* octets in the current line so far */
	uint32_t max_line;	/* limit incl. CRLF, a stuffed leading dot not counted */
	uint32_t flags;		/* enum data_flag, accumulated */
	uint64_t offset;	/* stream octets consumed so far */
	uint64_t first_flag_at;	/* stream offset of the byte that raised the first flag */
	int done;		/* the end was found */
};

/* max_line 0 means DATA_LINE_MAX. */
void data_scan_init(struct data_scan *s, uint32_t max_line);

/*
 * Scans buf[0..len). Returns the number of octets that belong to the
 * message: up to and including the terminating ".\r\n" when the end is
 * in this chunk (then s->done is set and the rest of buf is not
 * message), else len. Must not be called again once done.
 */
size_t data_scan(struct data_scan *s, const char *buf, size_t len);

/*
 * Whether msg[0..n), a whole dot-stuffed message without its final
 * ".\r\n", has a line that starts with '.' (a stuffed dot): if not, its
 * octets are the message itself, as BDAT would carry it.
 */
int data_stuffed_dot(const char *msg, size_t n);

#endif
