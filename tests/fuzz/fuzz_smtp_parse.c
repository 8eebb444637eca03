/*
 * fuzz_smtp_parse.c - libFuzzer target for proxy/smtp_parse.c. The line
 * is copied to an exact-size heap block so ASan sees any over-read; the
 * result is checked against invariants that hold for every input:
 * BAD_CHAR exactly when a control octet is present, slices inside the
 * line, limits respected, and the same answer twice.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "smtp_parse.h"

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

static void
check_inside(struct slice s, const char *line, size_t len)
{
	if (s.len == 0)
		return;
	CHECK(s.p != NULL);
	CHECK(s.p >= line && s.p + s.len <= line + len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smtp_cmd cmd, again;
	enum smtp_parse_status st;
	const char *why = NULL, *why2 = NULL;
	int ctl = 0;
	size_t i, vlen;
	unsigned j, k;
	char *line;

	/* the caller enforces SMTP_LINE_MAX; allow some slack past it */
	if (size > 4 * SMTP_LINE_MAX)
		return 0;
	line = malloc(size ? size : 1);
	if (line == NULL)
		return 0;
	memcpy(line, data, size);
	for (i = 0; i < size; i++)
		if ((uint8_t)line[i] < 0x20 || (uint8_t)line[i] == 0x7f)
			ctl = 1;

	st = smtp_parse_line(line, size, &cmd, &why);
	CHECK(st <= SMTP_PARSE_BAD_CHAR);
	CHECK((st == SMTP_PARSE_BAD_CHAR) == ctl);
	if (st != SMTP_PARSE_OK)
		CHECK(why != NULL && why[0] != '\0');
	if (st == SMTP_PARSE_OK) {
		CHECK(cmd.verb > SMTP_UNKNOWN && cmd.verb < SMTP_VERB_COUNT);
		/* the first word is the verb's name */
		for (vlen = 0; vlen < size && line[vlen] != ' '; vlen++)
			;
		CHECK(slice_eq_ci((struct slice){ line, vlen },
		    smtp_verb_name(cmd.verb)));
		check_inside(cmd.arg, line, size);
		check_inside(cmd.path, line, size);
		CHECK(cmd.path.len <= 254);	/* 256 with the brackets */
		CHECK(!cmd.null_path || (cmd.verb == SMTP_MAIL && cmd.path.len == 0));
		if (cmd.verb == SMTP_RCPT)
			CHECK(cmd.path.len > 0);
		CHECK(cmd.nparams <= SMTP_MAX_PARAMS);
		if (cmd.verb != SMTP_MAIL && cmd.verb != SMTP_RCPT)
			CHECK(cmd.nparams == 0 && cmd.path.len == 0);
		for (j = 0; j < cmd.nparams; j++) {
			struct smtp_param *p = &cmd.params[j];

			CHECK(p->key.len > 0);
			check_inside(p->key, line, size);
			check_inside(p->value, line, size);
			CHECK((p->value.p == NULL) == (p->value.len == 0));
			for (k = 0; k < j; k++)
				CHECK(!(cmd.params[k].key.len == p->key.len &&
				    strncasecmp(cmd.params[k].key.p, p->key.p,
				    p->key.len) == 0));
		}
	}
	/* pure: the same line gives the same answer */
	CHECK(smtp_parse_line(line, size, &again, &why2) == st);
	CHECK(again.verb == cmd.verb && again.nparams == cmd.nparams);
	if (st != SMTP_PARSE_OK)
		CHECK(why2 == why);
	free(line);
	return 0;
}
