/*
 * sink_session.c - owns one mxsink SMTP/LMTP session: the dialog (a verb
 * table of command handlers), full PIPELINING (every complete line of a
 * receive is answered in order and the replies leave in one send), the
 * DATA phase (end found by data_scan, no other per-byte work unless
 * storing), end-of-data replies (immediate or delayed on the timer
 * wheel), the idle timeout and the session's part of a shutdown.
 *
 * The session never refuses a message for its content: it is a lenient
 * backend. Bare CR/LF, NUL and long lines are counted and logged.
 *
 * TLS (--tls-cert/--tls-key): STARTTLS is offered in EHLO; its 220 leaves
 * in clear, the handshake follows, and the session starts over (RFC 3207
 * 4.2: EHLO again, nothing said in clear is kept). --tls-implicit does the
 * handshake first and greets under TLS. A message received under TLS gets
 * a "TLS <version> <cipher>" line in its --store .env.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "log.h"
#include "sink.h"

static void sink_on_recv(struct conn *c, char *data, size_t len, int bid);
static void sink_on_drain(struct conn *c);
static void sink_on_closed(struct conn *c);
static void sink_on_tls(struct conn *c, int err);
static void sink_chunk_end(struct sink_session *s);

static const struct conn_ops sink_conn_ops = {
	.on_recv = sink_on_recv,
	.on_drain = sink_on_drain,
	.on_closed = sink_on_closed,
	.on_tls = sink_on_tls,
};

#define S_GREETING "220 " SINK_HOSTNAME " ESMTP\r\n"
#define S_EHLO_TAIL \
	"250-PIPELINING\r\n" \
	"250-SIZE 2147483647\r\n" \
	"250-8BITMIME\r\n" \
	"250-SMTPUTF8\r\n" \
	"250-ENHANCEDSTATUSCODES\r\n" \
	"250-DSN\r\n" \
	"250-XFORWARD NAME ADDR PROTO HELO\r\n" \
	"250 XCLIENT NAME ADDR PROTO HELO LOGIN\r\n"

/* Between DATA (or a first BDAT) and the end of that message. */
static int
sink_in_message(const struct sink_session *s)
{
	return s->data_mode || s->chunk_mode || s->bdat;
}

/* Queues a literal reply; replies of one receive coalesce in conn's chunk. */
static void
sink_reply(struct sink_session *s, const char *text)
{
	if (conn_write(&s->conn, text, strlen(text)) < 0)
		conn_close(&s->conn);
}

/* "CODE X.0.0 test reply" for a --reply-* override. */
static void
sink_reply_code(struct sink_session *s, int code)
{
	conn_printf(&s->conn, "%d %d.0.0 test reply\r\n", code, code / 100);
}

static void
sink_txn_reset(struct sink_session *s)
{
	s->has_mail = 0;
	s->nrcpt = 0;
	s->rcpt_refused = 0;
	if (s->bdat) {
		/* a BDAT transaction without its LAST chunk: nothing of it is kept */
		sink_store_abort(&s->store);
		s->bdat = 0;
	}
	sink_buf_reset(&s->env);
	sink_buf_reset(&s->xforward);
}

/* ------------------------------------------------------------ commands */

/* The argument after "FROM:" / "TO:" as "<path>"; 0 or -1. */
static int
sink_parse_path(const char *arg, size_t len, const char *kw, const char **path, size_t *plen)
{
	size_t kwlen = strlen(kw), i;

	if (len < kwlen || strncasecmp(arg, kw, kwlen) != 0)
		return -1;
	arg += kwlen;
	len -= kwlen;
	while (len && *arg == ' ') {
		arg++;
		len--;
	}
	if (len == 0)
		return -1;
	if (*arg == '<') {
		for (i = 1; i < len && arg[i] != '>'; i++)
			;
		if (i == len)
			return -1;
		*path = arg + 1;
		*plen = i - 1;
		return 0;
	}
	/* Lenient: a bare address up to the first space. */
	for (i = 0; i < len && arg[i] != ' '; i++)
		;
	*path = arg;
	*plen = i;
	return 0;
}

/* STARTTLS is on offer: TLS configured, not implicit, not yet under it. */
static int
sink_can_starttls(const struct sink_session *s)
{
	return sink_opts.tls_ctx && !sink_opts.tls_implicit && !s->tls;
}

static void
cmd_hello(struct sink_session *s, int extended)
{
	sink_txn_reset(s);
	if (!extended) {
		sink_reply(s, "250 " SINK_HOSTNAME "\r\n");
		return;
	}
	sink_reply(s, "250-" SINK_HOSTNAME "\r\n");
	if (sink_can_starttls(s))
		sink_reply(s, "250-STARTTLS\r\n");
	if (!sink_opts.no_chunking)
		sink_reply(s, "250-CHUNKING\r\n");
	sink_reply(s, S_EHLO_TAIL);
}

static void
cmd_ehlo(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	if (sink_opts.lmtp) {
		sink_reply(s, "500 5.5.1 Error: this is LMTP, use LHLO\r\n");
		return;
	}
	cmd_hello(s, 1);
}

static void
cmd_helo(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	if (sink_opts.lmtp) {
		sink_reply(s, "500 5.5.1 Error: this is LMTP, use LHLO\r\n");
		return;
	}
	cmd_hello(s, 0);
}

static void
cmd_lhlo(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	if (!sink_opts.lmtp) {
		sink_reply(s, "500 5.5.2 Error: command not recognized\r\n");
		return;
	}
	cmd_hello(s, 1);
}

static void
cmd_mail(struct sink_session *s, const char *arg, size_t len)
{
	const char *path;
	size_t plen;

	if (s->has_mail) {
		sink_reply(s, "503 5.5.1 Error: nested MAIL command\r\n");
		return;
	}
	if (sink_parse_path(arg, len, "FROM:", &path, &plen) < 0) {
		sink_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
		return;
	}
	if (sink_opts.reply_mail && sink_opts.reply_mail / 100 != 2) {
		sink_reply_code(s, sink_opts.reply_mail);
		return;
	}
	/* Not a full reset: XFORWARD attributes sent before MAIL belong to this transaction. */
	sink_buf_reset(&s->env);
	s->nrcpt = s->rcpt_refused = 0;
	if (sink_buf_printf(&s->env, "MAIL FROM:<%.*s>\n", (int)plen, path) < 0) {
		sink_reply(s, "452 4.3.1 Error: out of memory\r\n");
		return;
	}
	s->has_mail = 1;
	if (sink_opts.reply_mail)
		sink_reply_code(s, sink_opts.reply_mail);
	else
		sink_reply(s, "250 2.1.0 Ok\r\n");
}

static void
cmd_rcpt(struct sink_session *s, const char *arg, size_t len)
{
	const char *path;
	size_t plen;

	if (!s->has_mail) {
		sink_reply(s, "503 5.5.1 Error: need MAIL command\r\n");
		return;
	}
	if (sink_parse_path(arg, len, "TO:", &path, &plen) < 0) {
		sink_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
		return;
	}
	if (sink_opts.reply_rcpt && sink_opts.reply_rcpt / 100 != 2) {
		s->rcpt_refused++;
		sink_reply_code(s, sink_opts.reply_rcpt);
		return;
	}
	if (sink_buf_printf(&s->env, "RCPT TO:<%.*s>\n", (int)plen, path) < 0) {
		sink_reply(s, "452 4.3.1 Error: out of memory\r\n");
		return;
	}
	s->nrcpt++;
	if (sink_opts.reply_rcpt)
		sink_reply_code(s, sink_opts.reply_rcpt);
	else
		sink_reply(s, "250 2.1.5 Ok\r\n");
}

static void
sink_new_id(struct sink_session *s)
{
	uint64_t n = atomic_fetch_add(&sink_id_next, 1);

	/* Start time, pid, counter: unique across runs and across mxsinks sharing DIR. */
	snprintf(s->id, sizeof(s->id), "%08X%07X%010llX", sink_id_prefix, sink_id_pid,
		 (unsigned long long)n);
}

/* The temp file of a new id; O_EXCL finds a clash (a pid reused within one second). */
static int
sink_store_begin(struct sink_session *s)
{
	for (int tries = 0; tries < 3; tries++) {
		sink_new_id(s);
		if (sink_store_open(&s->store, sink_opts.store_dir, s->id) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	return -1;
}

/* Opens the message (an id, the --store file); or -1 (logged). */
static int
sink_txn_open(struct sink_session *s)
{
	if (!sink_opts.store_dir)
		sink_new_id(s);
	else if (sink_store_begin(s) < 0) {
		log_error("mxsink: cannot create %s: %m", s->store.tmp);
		sink_store_abort(&s->store);
		return -1;
	}
	return 0;
}

#define S_CANNOT_STORE "451 4.3.0 Error: cannot store the message\r\n"

static void
cmd_data(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	if (!s->has_mail) {
		sink_reply(s, "503 5.5.1 Error: need MAIL command\r\n");
		return;
	}
	if (s->nrcpt == 0) {
		sink_reply(s, s->rcpt_refused ? "554 5.5.1 Error: no valid recipients\r\n"
				: "503 5.5.1 Error: need RCPT command\r\n");
		return;
	}
	if (s->bdat) {
		/* RFC 3030 2: DATA and BDAT do not mix in one transaction */
		sink_reply(s, "503 5.5.1 Error: BDAT transaction in progress\r\n");
		return;
	}
	if (sink_txn_open(s) < 0) {
		sink_reply(s, S_CANNOT_STORE);
		return;
	}
	data_scan_init(&s->scan, 0);
	s->data_mode = 1;
	sink_reply(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
}

/*
 * RFC 3030: "BDAT size [LAST]", then exactly size octets of message,
 * whatever they hold. A refused BDAT still has its octets read (the
 * reply follows them). A size that cannot be read leaves no way to find
 * the next command: 501 and the session ends.
 */
static void
cmd_bdat(struct sink_session *s, const char *arg, size_t len)
{
	uint64_t n = 0;
	size_t i = 0;

	while (i < len && arg[i] >= '0' && arg[i] <= '9' && i < 19)
		n = n * 10 + (uint64_t)(arg[i++] - '0');
	if (i == 0 || (i < len && !(len - i == 5 && strncasecmp(arg + i, " LAST", 5) == 0))) {
		sink_reply(s, "501 5.5.4 Syntax: BDAT size [LAST]\r\n");
		s->quitting = 1;
		return;
	}
	s->chunk_mode = 1;
	s->chunk_left = n;
	s->chunk_last = i < len;
	s->chunk_refusal = NULL;
	if (!s->has_mail)
		s->chunk_refusal = "503 5.5.1 Error: need MAIL command\r\n";
	else if (s->nrcpt == 0)
		s->chunk_refusal = s->rcpt_refused ? "554 5.5.1 Error: no valid recipients\r\n"
				   : "503 5.5.1 Error: need RCPT command\r\n";
	else if (!s->bdat) {
		if (sink_txn_open(s) < 0) {
			s->chunk_refusal = S_CANNOT_STORE;
		} else {
			data_scan_init(&s->scan, 0);	/* for its offset: the message size */
			s->bdat = 1;
		}
	}
	if (n == 0)
		sink_chunk_end(s);
}

static void
cmd_rset(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	sink_txn_reset(s);
	sink_reply(s, "250 2.0.0 Ok\r\n");
}

static void
cmd_noop(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	sink_reply(s, "250 2.0.0 Ok\r\n");
}

static void
cmd_quit(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	(void)len;
	sink_reply(s, "221 2.0.0 Bye\r\n");
	s->quitting = 1;
}

/* Appends "ATTR=VALUE ..." to b, space separated; 0 or -1 (already replied). */
static int
sink_attrs_add(struct sink_session *s, struct sink_buf *b, const char *arg, size_t len)
{
	if (s->has_mail) {
		sink_reply(s, "503 5.5.1 Error: MAIL transaction in progress\r\n");
		return -1;
	}
	if (len == 0) {
		sink_reply(s, "501 5.5.4 Syntax: attribute=value...\r\n");
		return -1;
	}
	if ((b->len && sink_buf_append(b, " ", 1) < 0) || sink_buf_append(b, arg, len) < 0) {
		sink_reply(s, "452 4.3.1 Error: out of memory\r\n");
		return -1;
	}
	return 0;
}

static void
cmd_xforward(struct sink_session *s, const char *arg, size_t len)
{
	if (sink_attrs_add(s, &s->xforward, arg, len) == 0)
		sink_reply(s, "250 2.0.0 Ok\r\n");
}

static void
cmd_xclient(struct sink_session *s, const char *arg, size_t len)
{
	/* XCLIENT restarts the session as if from the named client: new greeting. */
	if (sink_attrs_add(s, &s->xclient, arg, len) == 0) {
		sink_txn_reset(s);
		sink_reply(s, S_GREETING);
	}
}

/* RFC 3207. The 220 is queued before the record layer starts, so it leaves in clear. */
static void
cmd_starttls(struct sink_session *s, const char *arg, size_t len)
{
	(void)arg;
	if (!sink_opts.tls_ctx || sink_opts.tls_implicit) {
		sink_reply(s, "502 5.5.1 Error: command not implemented\r\n");
		return;
	}
	if (s->tls) {
		sink_reply(s, "554 5.5.1 Error: TLS already active\r\n");
		return;
	}
	if (len) {
		sink_reply(s, "501 5.5.4 Syntax: STARTTLS\r\n");
		return;
	}
	sink_txn_reset(s);
	sink_reply(s, "220 2.0.0 Ready to start TLS\r\n");
	if (conn_tls_start(&s->conn, sink_opts.tls_ctx, 1, NULL) < 0) {
		log_error("mxsink: client=%s cannot start TLS (out of memory)", s->peer);
		conn_close(&s->conn);
		return;
	}
	/* sink_input drops what the client sent after STARTTLS (no injection, RFC 3207 5). */
	s->tls_wait = 1;
}

static const struct sink_verb {
	const char *name;
	void (*fn)(struct sink_session *s, const char *arg, size_t len);
} sink_verbs[] = {
	{ "EHLO", cmd_ehlo },
	{ "HELO", cmd_helo },
	{ "LHLO", cmd_lhlo },
	{ "MAIL", cmd_mail },
	{ "RCPT", cmd_rcpt },
	{ "DATA", cmd_data },
	{ "BDAT", cmd_bdat },
	{ "RSET", cmd_rset },
	{ "NOOP", cmd_noop },
	{ "QUIT", cmd_quit },
	{ "XFORWARD", cmd_xforward },
	{ "XCLIENT", cmd_xclient },
	{ "STARTTLS", cmd_starttls },
};

/* One command line, CRLF or LF included. */
static void
sink_command(struct sink_session *s, const char *line, size_t len)
{
	size_t vlen = 0;

	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	while (vlen < len && line[vlen] != ' ')
		vlen++;
	for (size_t i = 0; i < ARRAY_SIZE(sink_verbs); i++) {
		const struct sink_verb *v = &sink_verbs[i];
		if (strlen(v->name) == vlen && strncasecmp(v->name, line, vlen) == 0) {
			size_t skip = vlen < len ? vlen + 1 : vlen;
			v->fn(s, line + skip, len - skip);
			return;
		}
	}
	sink_reply(s, "500 5.5.2 Error: command not recognized\r\n");
}

/* Consumes command octets up to and including one LF (or all of them). */
static size_t
sink_cmd_feed(struct sink_session *s, const char *p, size_t n)
{
	const char *lf = memchr(p, '\n', n);
	size_t len = lf ? (size_t)(lf - p) + 1 : n;

	if (s->line_overflow || s->line.len + len > SINK_LINE_MAX) {
		/* Discard to the end of the line, then say so once. */
		s->line_overflow = 1;
		sink_buf_reset(&s->line);
		if (lf) {
			s->line_overflow = 0;
			sink_reply(s, "500 5.5.2 Error: line too long\r\n");
		}
		return len;
	}
	if (lf && s->line.len == 0) {
		/* The common case: a whole line inside this receive, no copy. */
		sink_command(s, p, len);
		return len;
	}
	if (sink_buf_append(&s->line, p, len) < 0) {
		conn_close(&s->conn);
		return n;
	}
	if (lf) {
		sink_command(s, s->line.p, s->line.len);
		sink_buf_reset(&s->line);
	}
	return len;
}

/* ---------------------------------------------------------- end of data */

static void
sink_note_flags(struct sink_session *s)
{
	struct sink_stats *st = &s->w->stats;
	uint32_t f = s->scan.flags;

	st->bare_lf += !!(f & DATA_FLAG_BARE_LF);
	st->bare_cr += !!(f & DATA_FLAG_BARE_CR);
	st->nul += !!(f & DATA_FLAG_NUL);
	st->long_lines += !!(f & DATA_FLAG_LONG_LINE);
	if (f && !sink_opts.quiet)
		log_warn("mxsink: id=%s client=%s accepted anyway:%s%s%s%s, first at offset %llu",
			 s->id, s->peer,
			 f & DATA_FLAG_BARE_LF ? " bare_lf" : "",
			 f & DATA_FLAG_BARE_CR ? " bare_cr" : "",
			 f & DATA_FLAG_NUL ? " nul" : "",
			 f & DATA_FLAG_LONG_LINE ? " long_line" : "",
			 (unsigned long long)s->scan.first_flag_at);
}

/* Deterministic: xorshift64 per worker. */
static int
sink_fail_now(struct sink_worker *w)
{
	uint64_t x = w->rng;

	if (sink_opts.fail_rate <= 0)
		return 0;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	w->rng = x;
	return (double)(x >> 11) / (double)(1ull << 53) < sink_opts.fail_rate;
}

/* Appends the envelope's XFORWARD/XCLIENT lines; 0 or -1. */
static int
sink_env_attrs(struct sink_session *s)
{
	if (s->xforward.len && sink_buf_printf(&s->env, "XFORWARD %.*s\n",
					       (int)s->xforward.len, s->xforward.p) < 0)
		return -1;
	if (s->xclient.len && sink_buf_printf(&s->env, "XCLIENT %.*s\n",
					      (int)s->xclient.len, s->xclient.p) < 0)
		return -1;
	/* Proof for tests that the link (e.g. mxgate's backend link) was encrypted. */
	if (s->tls && sink_buf_printf(&s->env, "TLS %s\n", s->tls_desc) < 0)
		return -1;
	return 0;
}

/* Decides the outcome of the transaction into line; stores the message when accepted. */
static void
sink_outcome(struct sink_session *s, char *line, size_t size, int *accepted)
{
	int code = sink_opts.reply_data;

	*accepted = 0;
	if (code && code / 100 != 2) {
		snprintf(line, size, "%d %d.0.0 test reply\r\n", code, code / 100);
	} else if (sink_fail_now(s->w)) {
		snprintf(line, size, "451 4.3.0 Error: test failure (--fail-rate)\r\n");
	} else if (sink_opts.store_dir &&
		   (sink_env_attrs(s) < 0 ||
		    sink_store_commit(&s->store, sink_opts.store_dir, s->id, s->env.p, s->env.len) < 0)) {
		log_error("mxsink: id=%s cannot store the message: %m", s->id);
		snprintf(line, size, "451 4.3.0 Error: cannot store the message\r\n");
	} else {
		snprintf(line, size, "%d 2.0.0 Ok: queued as %s\r\n", code ? code : 250, s->id);
		*accepted = 1;
	}
	sink_store_abort(&s->store);	/* no-op after a commit */
}

/* Queues the end-of-data reply (one line per recipient with LMTP). */
static void
sink_final_reply(struct sink_session *s, const char *text, size_t len)
{
	/* --max-messages stops once this reply has left, not an earlier one. */
	s->stop_after_send = s->last_message;
	s->last_message = 0;
	if (conn_write(&s->conn, text, len) < 0)
		conn_close(&s->conn);
}

static void
sink_log_queued(struct sink_session *s)
{
	const char *nl = memchr(s->env.p, '\n', s->env.len);
	int flen = nl ? (int)(nl - s->env.p) : 0;

	log_info("mxsink: id=%s client=%s %.*s rcpts=%u size=%llu via=%s", s->id, s->peer,
		 flen, s->env.p, s->nrcpt, (unsigned long long)s->scan.offset, s->bdat ? "BDAT" : "DATA");
}

static void
sink_data_end(struct sink_session *s)
{
	char line[128];
	unsigned n = sink_opts.lmtp ? s->nrcpt : 1;
	int accepted;

	s->data_mode = 0;
	s->w->stats.bytes += s->scan.offset;
	sink_note_flags(s);
	sink_outcome(s, line, sizeof(line), &accepted);
	if (accepted) {
		s->w->stats.messages++;
		s->w->stats.recipients += s->nrcpt;
		if (!sink_opts.quiet)
			sink_log_queued(s);
		if (sink_opts.max_messages &&
		    atomic_fetch_add(&sink_accepted, 1) + 1 == sink_opts.max_messages)
			s->last_message = 1;
	} else {
		s->w->stats.failed++;
	}
	sink_buf_reset(&s->reply);
	for (unsigned i = 0; i < n; i++)
		sink_buf_append(&s->reply, line, strlen(line));
	sink_txn_reset(s);
	if (sink_opts.delay_ms == 0) {
		sink_final_reply(s, s->reply.p, s->reply.len);
		return;
	}
	/* Hold the rest of the input until the reply goes: replies stay in order. */
	s->waiting = 1;
	conn_recv_pause(&s->conn);
	timer_arm(&s->w->ring.timers, &s->delay_timer, sink_opts.delay_ms);
}

/* A BDAT chunk has all its octets: its reply, or with LAST the message's. */
static void
sink_chunk_end(struct sink_session *s)
{
	char line[80];

	s->chunk_mode = 0;
	if (s->chunk_refusal) {
		sink_reply(s, s->chunk_refusal);
		return;
	}
	if (!s->chunk_last) {
		snprintf(line, sizeof(line), "250 2.0.0 %llu octets received\r\n",
			 (unsigned long long)s->scan.offset);
		sink_reply(s, line);
		return;
	}
	/* The store drops the last two octets it is given (sink_store.c): these. */
	if (s->store.fd >= 0)
		sink_store_raw(&s->store, "\r\n", 2);
	sink_data_end(s);	/* its sink_txn_reset ends the BDAT transaction */
}

/* Consumes the octets of a BDAT chunk, up to its size. */
static size_t
sink_chunk_feed(struct sink_session *s, const char *p, size_t n)
{
	size_t used = n < s->chunk_left ? n : (size_t)s->chunk_left;

	if (!s->chunk_refusal) {
		if (s->store.fd >= 0)
			sink_store_raw(&s->store, p, used);
		s->scan.offset += used;
	}
	s->chunk_left -= used;
	if (s->chunk_left == 0)
		sink_chunk_end(s);
	return used;
}

/* Consumes DATA octets up to and including the end, or all of them. */
static size_t
sink_data_feed(struct sink_session *s, const char *p, size_t n)
{
	size_t used = data_scan(&s->scan, p, n);

	if (s->store.fd >= 0)
		sink_store_feed(&s->store, p, used);
	if (s->scan.done)
		sink_data_end(s);
	return used;
}

/* ------------------------------------------------------------- session */

static void
sink_input(struct sink_session *s, const char *p, size_t n)
{
	while (n && !s->waiting && !s->quitting && !s->tls_wait && !s->conn.closing) {
		size_t used = s->chunk_mode ? sink_chunk_feed(s, p, n) :
			      s->data_mode ? sink_data_feed(s, p, n) : sink_cmd_feed(s, p, n);
		p += used;
		n -= used;
	}
	if (n && s->waiting && sink_buf_append(&s->held, p, n) < 0)
		conn_close(&s->conn);
}

/* After input or a delayed reply: send, and close when asked to. */
static void
sink_after_input(struct sink_session *s)
{
	if (s->w->draining && s->tls_wait) {
		/* Nothing to say in the middle of a handshake: just go. */
		conn_close(&s->conn);
		return;
	}
	if (s->w->draining && !sink_in_message(s) && !s->waiting && !s->quitting) {
		sink_reply(s, "421 4.3.2 " SINK_HOSTNAME " shutting down\r\n");
		s->quitting = 1;
	}
	if (s->quitting)
		conn_close_after_send(&s->conn);
	else
		conn_flush(&s->conn);
}

static void
sink_on_recv(struct conn *c, char *data, size_t len, int bid)
{
	struct sink_session *s = c->owner;

	(void)bid;
	timer_arm(&s->w->ring.timers, &s->idle_timer, SINK_IDLE_MS);
	sink_input(s, data, len);
	sink_after_input(s);
}

static void
sink_delay_fire(struct timer *t)
{
	struct sink_session *s = container_of(t, struct sink_session, delay_timer);
	struct sink_buf held = s->held;

	s->waiting = 0;
	sink_final_reply(s, s->reply.p, s->reply.len);
	/* Input may hold another end of data that waits again: take it out first. */
	memset(&s->held, 0, sizeof(s->held));
	sink_input(s, held.p, held.len);
	sink_buf_free(&held);
	if (!s->waiting)
		conn_recv_resume(&s->conn);
	sink_after_input(s);
}

static void
sink_idle_fire(struct timer *t)
{
	struct sink_session *s = container_of(t, struct sink_session, idle_timer);

	sink_reply(s, "421 4.4.2 " SINK_HOSTNAME " Error: timeout exceeded\r\n");
	conn_close_after_send(&s->conn);
}

static void
sink_request_stop(struct sink_session *s)
{
	if (s->stop_after_send) {
		s->stop_after_send = 0;
		atomic_store(&sink_quit, 1);
	}
}

static void
sink_on_drain(struct conn *c)
{
	sink_request_stop(c->owner);
}

void
sink_session_discard(struct sink_session *s)
{
	if (sink_in_message(s) || s->store.fd >= 0) {
		s->w->stats.aborted++;
		s->data_mode = s->chunk_mode = s->bdat = 0;
	}
	sink_store_abort(&s->store);
}

static void
sink_on_closed(struct conn *c)
{
	struct sink_session *s = c->owner;
	struct sink_worker *w = s->w;

	sink_request_stop(s);
	sink_session_discard(s);
	timer_cancel(&w->ring.timers, &s->idle_timer);
	timer_cancel(&w->ring.timers, &s->delay_timer);
	*s->pprev = s->next;
	if (s->next)
		s->next->pprev = s->pprev;
	w->nsessions--;
	sink_buf_free(&s->line);
	sink_buf_free(&s->held);
	sink_buf_free(&s->reply);
	sink_buf_free(&s->env);
	sink_buf_free(&s->xforward);
	sink_buf_free(&s->xclient);
	free(s->store.stage);
	free(s);
}

static void
sink_on_tls(struct conn *c, int err)
{
	struct sink_session *s = c->owner;
	const char *v, *ci;

	if (!s->tls_wait)
		return;
	s->tls_wait = 0;
	if (err) {
		s->w->stats.tls_failed++;
		log_info("mxsink: client=%s TLS handshake failed: %s", s->peer, conn_tls_error(c));
		conn_close(c);
		return;
	}
	s->w->stats.tls++;
	s->tls = 1;
	v = conn_tls_version(c);
	ci = conn_tls_cipher(c);
	snprintf(s->tls_desc, sizeof(s->tls_desc), "%s %s", v ? v : "?", ci ? ci : "?");
	if (!sink_opts.quiet)
		log_info("mxsink: client=%s tls=%s resumed=%s", s->peer, s->tls_desc,
			 conn_tls_resumed(c) ? "yes" : "no");
	if (sink_opts.tls_implicit) {
		sink_reply(s, S_GREETING);
	} else {
		/* RFC 3207 4.2: forget what was said in clear; the client must EHLO again. */
		sink_txn_reset(s);
		sink_buf_reset(&s->xclient);
		sink_buf_reset(&s->line);
		s->line_overflow = 0;
	}
	sink_after_input(s);
}

void
sink_session_drain(struct sink_session *s)
{
	if (s->conn.closing || s->quitting)
		return;
	if (s->tls_wait || (!sink_in_message(s) && !s->waiting))
		sink_after_input(s);
	/* A busy session gets its 421 after its end-of-data reply (sink_after_input). */
}

void
sink_session_accept(struct acceptor *a, int fd, const struct net_addr *peer)
{
	struct sink_worker *w = a->owner;
	struct sink_session *s = calloc(1, sizeof(*s));

	if (s == NULL) {
		close(fd);
		return;
	}
	net_set_nodelay(fd);
	conn_init(&s->conn, &w->ring, fd, &sink_conn_ops, s);
	s->w = w;
	sink_store_init(&s->store);
	net_addr_format(peer, s->peer, sizeof(s->peer));
	timer_init(&s->idle_timer, sink_idle_fire);
	timer_init(&s->delay_timer, sink_delay_fire);
	s->next = w->sessions;
	if (s->next)
		s->next->pprev = &s->next;
	s->pprev = &w->sessions;
	w->sessions = s;
	w->nsessions++;
	w->stats.connections++;
	timer_arm(&w->ring.timers, &s->idle_timer, SINK_IDLE_MS);
	if (sink_opts.tls_implicit) {
		/* RFC 8314: handshake first; the greeting follows in sink_on_tls. */
		if (conn_tls_start(&s->conn, sink_opts.tls_ctx, 1, NULL) < 0) {
			log_error("mxsink: client=%s cannot start TLS (out of memory)", s->peer);
			conn_close(&s->conn);
			return;
		}
		s->tls_wait = 1;
	} else {
		sink_reply(s, S_GREETING);
		conn_flush(&s->conn);
	}
	conn_recv_start(&s->conn);
}
