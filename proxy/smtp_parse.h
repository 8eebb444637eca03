/*
 * smtp_parse.h - the client command parser: one command line in, verb
 * and slices out. Pure (no I/O, no allocation), so it is unit-tested
 * and fuzzed; the slices point into the caller's line.
 */
#ifndef PROXY_SMTP_PARSE_H
#define PROXY_SMTP_PARSE_H

#include <stddef.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with CRLF. */
#define SMTP_LINE_MAX 512
#define SMTP_MAX_PARAMS 16

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_HELO, SMTP_EHLO, SMTP_LHLO,
	SMTP_MAIL, SMTP_RCPT, SMTP_DATA, SMTP_BDAT,
	SMTP_RSET, SMTP_NOOP, SMTP_QUIT, SMTP_VRFY, SMTP_EXPN, SMTP_HELP,
	SMTP_STARTTLS, SMTP_AUTH,
	SMTP_VERB_COUNT
};

struct slice {
	const char *p;
	size_t len;
};

struct smtp_param {
	struct slice key;	/* esmtp-keyword */
	struct slice value;	/* len 0 and p NULL when no "=value" */
};

struct smtp_cmd {
	enum smtp_verb verb;
	struct slice arg;	/* text after the verb and one SP, trailing spaces trimmed */
	struct slice path;	/* MAIL/RCPT: the address between < and >, source route removed; len 0 for <> */
	int null_path;		/* MAIL FROM:<> */
	struct smtp_param params[SMTP_MAX_PARAMS];
	unsigned nparams;
};

enum smtp_parse_status {
	SMTP_PARSE_OK = 0,
	SMTP_PARSE_UNKNOWN,	/* unrecognised verb: 500 5.5.1 / 502 */
	SMTP_PARSE_SYNTAX,	/* recognised verb, bad arguments: 501 5.5.4 (or 5.1.7/5.1.3 for paths) */
	SMTP_PARSE_BAD_CHAR,	/* NUL, CR or other control byte in the line: 500 5.5.2 */
};

/*
 * Parses one command line without its line ending (the caller strips
 * CRLF or a bare LF and enforces SMTP_LINE_MAX). Verbs are matched case-
 * insensitively. MAIL needs "FROM:" and RCPT "TO:" (a space after the
 * colon is tolerated, as Postfix does); the path must be in angle
 * brackets and be a valid RFC 5321 (RFC 6531 when UTF-8) mailbox or <>
 * for MAIL; "<Postmaster>" is valid for RCPT. Parameters are
 * "KEY[=VALUE]" separated by spaces: keyword = ALPHA/DIGIT *(ALPHA/DIGIT/-),
 * value = 1*(printable except '=' and SP, or UTF-8). Verbs that take no
 * argument (DATA, RSET, QUIT, STARTTLS) refuse one; NOOP and HELP accept
 * any; HELO/EHLO/LHLO need one. On failure *why (if non-NULL) gets a
 * short static text for the reply.
 */
enum smtp_parse_status smtp_parse_line(const char *line, size_t len,
				       struct smtp_cmd *cmd, const char **why);

/* The verb's canonical upper-case name ("MAIL"), "" for SMTP_UNKNOWN. */
const char *smtp_verb_name(enum smtp_verb v);
/* Case-insensitive compare of a slice with a NUL-terminated ASCII word. */
int slice_eq_ci(struct slice s, const char *word);

#endif
