/*
 * load_msg.h - everything mxload sends that is built once per run: the
 * command lines (one contiguous buffer, so a pipelined MAIL+RCPT+DATA
 * group is one reference and a lock-step command is a slice of it), and
 * the shared, dot-stuffed message body. All of it is read-only while
 * workers run, so every connection queues it with conn_write_ref.
 * Only the small header block (Subject, Date, Message-ID) is per message.
 */
#ifndef BENCH_LOAD_MSG_H
#define BENCH_LOAD_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define LOAD_ADDR_MAX 256		/* longest --from / --rcpt-domain / --helo */
#define LOAD_HDR_MAX 1280		/* a formatted header block fits */
#define LOAD_DATE_MAX 40

struct load_msg {
	char *cmds;			/* MAIL, RCPT x R, DATA, contiguous */
	size_t cmds_len;
	size_t mail_len;		/* MAIL line is cmds[0..mail_len) */
	size_t *rcpt_off;		/* RCPT i is cmds[rcpt_off[i]..rcpt_off[i+1]) */
	size_t data_off;		/* DATA line is cmds[data_off..cmds_len) */
	unsigned recipients;
	char *ehlo, *helo;		/* "EHLO name\r\n", "HELO name\r\n" */
	size_t ehlo_len, helo_len;
	char *auth;			/* "AUTH PLAIN <b64>\r\n" with --auth, else NULL */
	size_t auth_len;
	char *hdr_prefix;		/* "From: ...\r\nTo: ...\r\nSubject: mxload message " */
	size_t hdr_prefix_len;
	char id_base[48];		/* "<run>.<pid>." part of every Message-ID */
	size_t id_base_len;
	char *body;			/* dot-stuffed, CRLF lines, ends with CRLF */
	size_t body_wire_len;		/* bytes on the wire */
	size_t body_len;		/* bytes after un-stuffing (what a sink stores) */
};

/*
 * Builds the commands, the header prefix and a body that makes the whole
 * message about size bytes. Aborts on allocation failure (start-up only).
 */
void load_msg_build(struct load_msg *m, const char *from, const char *rcpt_domain,
		    const char *helo, unsigned recipients, uint64_t size);
void load_msg_free(struct load_msg *m);
/*
 * --auth: AUTH PLAIN with the initial response (RFC 4954 4, RFC 4616),
 * "\0user\0pass" in base64. Aborts on allocation failure (start-up only).
 */
void load_msg_auth(struct load_msg *m, const char *user, const char *pass);

/*
 * Formats the header block of message seq of worker thread into out
 * (LOAD_HDR_MAX bytes), ending with the blank line. The Message-ID
 * without angle brackets is out[*id_off .. *id_off + *id_len).
 * Returns the length.
 */
size_t load_msg_header(const struct load_msg *m, char *out, unsigned thread, uint64_t seq,
		       const char *date, size_t *id_off, size_t *id_len);

/* RFC 5322 date of t in UTC ("Tue, 28 Nov 2023 12:00:00 +0000") into buf[LOAD_DATE_MAX]. */
void load_msg_date(char *buf, time_t t);

/* The static lines every session uses. */
#define LOAD_DOT ".\r\n"		/* header and body end with CRLF already */
#define LOAD_RSET "RSET\r\n"
#define LOAD_QUIT "QUIT\r\n"
#define LOAD_STARTTLS "STARTTLS\r\n"

#endif
