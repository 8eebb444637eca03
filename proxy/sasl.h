/*
 * sasl.h - the wire side of SMTP AUTH (RFC 4954) for the PLAIN (RFC 4616)
 * and LOGIN mechanisms: strict base64 (RFC 4648), the AUTH command's
 * arguments, the PLAIN message and the LOGIN responses. Pure: no I/O, no
 * allocation; results go into caller-owned buffers.
 *
 * Replies the caller sends for each outcome (RFC 4954 sections 4 and 6):
 *   sasl_parse_auth SASL_MALFORMED       -> 501 5.5.4 Syntax error in parameters
 *   mechanism SASL_MECH_UNKNOWN          -> 504 5.5.4 Unrecognized authentication type
 *   a decoder's SASL_MALFORMED           -> 501 5.5.2 Cannot decode response
 *   sasl_is_abort() on a continuation    -> 501 5.0.0 Authentication cancelled
 * Note RFC 4954 section 4: AUTH lines and continuation lines may be up to
 * 12288 octets, more than SMTP_LINE_MAX; a PLAIN message with the longest
 * password below is 2048 base64 characters.
 */
#ifndef PROXY_SASL_H
#define PROXY_SASL_H

#include <stddef.h>
#include <sys/types.h>

#define SASL_USER_MAX	255	/* authcid (and authzid) octets */
#define SASL_PASS_MAX	1024	/* password octets */
#define SASL_MECH_NAME_MAX 20	/* RFC 4422 3.1: sasl-mech is 1..20 characters */

/* Base64 of "Username:" and "Password:", the LOGIN mechanism's prompts (after "334 "). */
#define SASL_LOGIN_PROMPT_USER	"VXNlcm5hbWU6"
#define SASL_LOGIN_PROMPT_PASS	"UGFzc3dvcmQ6"
/* For the EHLO reply: "250-AUTH " SASL_MECHS_OFFERED. */
#define SASL_MECHS_OFFERED	"PLAIN LOGIN"

/* Characters needed to encode n octets (without the NUL), and octets at most decoded from n characters. */
#define SASL_B64_ENCODED_LEN(n)	((((n) + 2) / 3) * 4)
#define SASL_B64_DECODED_MAX(n)	(((n) / 4) * 3)

enum sasl_status {
	SASL_OK = 0,
	SASL_MALFORMED,		/* see the reply table above */
};

enum sasl_mech {
	SASL_MECH_UNKNOWN = 0,
	SASL_MECH_PLAIN,
	SASL_MECH_LOGIN,
};

/*
 * Credentials from the client. Both fields are NUL-terminated and contain
 * no NUL. Holds a clear-text password: wipe with sasl_cred_wipe() as soon
 * as it has been verified (or copied to the verifying job).
 */
struct sasl_cred {
	char user[SASL_USER_MAX + 1];
	char pass[SASL_PASS_MAX + 1];
	size_t user_len, pass_len;
};

/* The AUTH command's arguments; initial points into the caller's line. */
struct sasl_auth_cmd {
	enum sasl_mech mech;
	char mech_name[SASL_MECH_NAME_MAX + 1];	/* as sent, upper-cased, for logs */
	int has_initial;		/* an initial response was given ("=" counts, as empty) */
	const char *initial;		/* its base64 text; NULL and length 0 for "=" or none */
	size_t initial_len;
};

/*
 * Decodes base64 in[0..len) into out[0..cap). Strict: the length must be
 * a multiple of 4, only the RFC 4648 alphabet, "=" only as the final one
 * or two padding characters, unused bits of the last group zero, no
 * whitespace or line breaks. Returns the decoded length (0 for len 0), or
 * -1 when the input is invalid or does not fit in cap. Constant time over
 * the characters (no table look-up or branch on their value) since the
 * input carries passwords; only validity is revealed.
 */
ssize_t sasl_b64_decode(const char *in, size_t len, unsigned char *out, size_t cap);
/*
 * Encodes in[0..len) with padding into out, NUL-terminated. Returns the
 * length without the NUL, or -1 when cap < SASL_B64_ENCODED_LEN(len) + 1.
 */
ssize_t sasl_b64_encode(const void *in, size_t len, char *out, size_t cap);

/*
 * Parses the text after "AUTH " (args[0..len), no line ending):
 * sasl-mech [SP initial-response]; extra spaces between or after are
 * tolerated. The mechanism is 1..20 of A-Z a-z 0-9 - _ and matched
 * case-insensitively; a well-formed but unsupported one gives SASL_OK
 * with SASL_MECH_UNKNOWN. The initial response "=" means an empty one
 * (RFC 4954 4); its base64 is checked later by the decoder. Returns
 * SASL_OK or SASL_MALFORMED (missing or bad mechanism, a third word).
 */
enum sasl_status sasl_parse_auth(const char *args, size_t len, struct sasl_auth_cmd *out);

/* "PLAIN", "LOGIN", or "" for SASL_MECH_UNKNOWN. */
const char *sasl_mech_name(enum sasl_mech m);

/*
 * Decodes a PLAIN response b64[0..len): [authzid] NUL authcid NUL passwd.
 * SASL_MALFORMED for bad base64, a message that is not exactly three
 * fields, an empty authcid or password (RFC 4616: 1*SAFE), an authzid
 * that is non-empty and differs from authcid (no proxy authorization),
 * or fields longer than SASL_USER_MAX / SASL_PASS_MAX. On success out
 * holds authcid and passwd; on failure out is wiped. An empty response
 * (len 0, as from "=") is malformed.
 */
enum sasl_status sasl_plain_decode(const char *b64, size_t len, struct sasl_cred *out);

/*
 * LOGIN: decode the client's answer to the user-name prompt (or the
 * initial response of "AUTH LOGIN <b64>", which RFC 4954 clients may
 * send in place of the first answer) into out->user, and the answer to
 * the password prompt into out->pass. SASL_MALFORMED for bad base64, an
 * empty value, a NUL inside, or more than SASL_USER_MAX / SASL_PASS_MAX
 * octets; the field is then wiped. Each touches only its own field.
 */
enum sasl_status sasl_login_user(const char *b64, size_t len, struct sasl_cred *out);
enum sasl_status sasl_login_pass(const char *b64, size_t len, struct sasl_cred *out);

/* 1 when a continuation line (CRLF or LF stripped or not) is the client's "*" abort, else 0. */
int sasl_is_abort(const char *line, size_t len);

/* Zeroes all of c with explicit_bzero, so the password does not survive in memory. */
void sasl_cred_wipe(struct sasl_cred *c);

#endif
