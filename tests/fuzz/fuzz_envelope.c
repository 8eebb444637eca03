/*
 * fuzz_envelope.c - libFuzzer target for proxy/envelope.c, the two
 * places where bytes from one side are rewritten for the other:
 *  - octet 0 even: the rest is a client command line; when it parses as
 *    MAIL or RCPT, the line mxgate would send to a backend must be a
 *    single line of printable octets (no CR, LF, NUL or other control
 *    octet can be smuggled through a parameter), start with the verb and
 *    fit its buffer; a refusal carries a 4xx/5xx code and text;
 *  - octet 0 odd: the rest is a backend's reply; what the client would
 *    get must be whole "ddd-text" / "ddd text" CRLF lines with no control
 *    octet, the last one final, within the output size (octet 1 picks it).
 * Inputs and outputs are exact-size heap blocks, so ASan sees any
 * over-read or over-write.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "envelope.h"
#include "smtp_parse.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void
check_command(const uint8_t *data, size_t size, int dsn)
{
	struct smtp_cmd cmd;
	struct env_verdict v;
	const char *why = NULL;
	size_t outlen = SMTP_LINE_MAX + 64;	/* what session.c gives it */
	char *line, *out;
	int n;

	if (size > SMTP_LINE_MAX)
		return;
	line = malloc(size ? size : 1);
	out = malloc(outlen);
	if (line == NULL || out == NULL)
		goto done;
	memcpy(line, data, size);
	if (smtp_parse_line(line, size, &cmd, &why) != SMTP_PARSE_OK ||
	    (cmd.verb != SMTP_MAIL && cmd.verb != SMTP_RCPT))
		goto done;
	memset(&v, 0, sizeof(v));
	if (cmd.verb == SMTP_MAIL)
		n = envelope_mail(&cmd, 50u << 20, dsn, out, outlen, &v);
	else
		n = envelope_rcpt(&cmd, dsn, out, outlen, &v);
	if (n < 0) {
		CHECK(v.code >= 400 && v.code <= 599);
		CHECK(v.text != NULL && v.text[0] != '\0');
		goto done;
	}
	CHECK((size_t)n < outlen);
	CHECK(memcmp(out, cmd.verb == SMTP_MAIL ? "MAIL FROM:<" : "RCPT TO:<",
	    cmd.verb == SMTP_MAIL ? 11 : 9) == 0);
	for (int i = 0; i < n; i++)
		CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7f);
done:
	free(line);
	free(out);
}

static void
check_reply(const uint8_t *data, size_t size, size_t outlen)
{
	char *in = malloc(size ? size : 1);
	char *out = malloc(outlen ? outlen : 1);
	size_t n, i, ls;

	if (in == NULL || out == NULL)
		goto done;
	memcpy(in, data, size);
	n = envelope_clean_reply(in, size, out, outlen);
	CHECK(n <= outlen);
	for (i = 0; i < n; i = ls) {
		/* one line: ddd, '-' or ' ', printable text, CRLF */
		CHECK(n - i >= 6);
		CHECK(out[i] >= '2' && out[i] <= '5' && is_digit(out[i + 1]) && is_digit(out[i + 2]));
		CHECK(out[i + 3] == '-' || out[i + 3] == ' ');
		for (ls = i + 4; ls < n && out[ls] != '\r'; ls++)
			CHECK((unsigned char)out[ls] >= 0x20 && out[ls] != 0x7f);
		CHECK(ls + 1 < n && out[ls + 1] == '\n');
		ls += 2;
		/* only the last line is final */
		CHECK((out[i + 3] == ' ') == (ls == n));
	}
done:
	free(in);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if ((data[0] & 1) == 0)
		check_command(data + 1, size - 1, (data[0] & 2) != 0);
	else
		check_reply(data + 2, size - 2, (size_t)data[1] * 17);
	return 0;
}
