/*
 * load_sess.c - one mxload SMTP client connection: greeting, EHLO (HELO
 * as fallback), then transactions until the worker has no more work or
 * --per-connection is reached, then QUIT. Lock-step by default: one
 * command per round trip; with --pipelining and a server that offers
 * PIPELINING, MAIL + RCPTs + DATA leave in one write and the replies are
 * read in order (RFC 2920). The message is the session's own header
 * block plus the run's shared body, both queued by reference.
 *
 * TLS (--tls): implicit starts the handshake right after connect and
 * reads the greeting under it; STARTTLS is greeting, EHLO, STARTTLS, 220,
 * handshake, EHLO again (RFC 3207 4.2: what was offered in clear is
 * forgotten). --auth then sends AUTH PLAIN with the initial response and
 * needs 235 before the first MAIL. A failed handshake or AUTH counts as a
 * connect error as well as in its own counter.
 *
 * Every way a connection ends goes through conn_close and on_closed,
 * which decides whether to reconnect: at once after a normal QUIT, after
 * a growing back-off after a failure, never after LOAD_MAX_FAILS
 * consecutive failures (server gone: stop instead of spinning).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "load.h"

#define LOAD_BACKOFF_MS 100

static void load_sess_next(struct load_sess *s);

static void
load_sess_expect(struct load_sess *s, enum load_state st)
{
	s->state = st;
	timer_arm(&s->w->ring.timers, &s->timer, s->w->cfg->timeout_ms);
}

static void
load_sess_drop(struct load_sess *s)
{
	timer_cancel(&s->w->ring.timers, &s->timer);
	if (s->state == LS_READY)
		load_worker_unwait(s->w, s);
	s->in_tx = 0;
	s->state = LS_IDLE;
	conn_close(&s->conn);
}

/* A failure that ends the connection; counted by the caller. */
static void
load_sess_fail(struct load_sess *s, uint64_t *counter)
{
	load_inc(counter, 1);
	s->fails++;
	load_sess_drop(s);
}

static void
load_sess_send(struct load_sess *s, const char *p, size_t n)
{
	/* Only static or session-owned memory gets here: no copy (see conn_write_ref). */
	if (conn_write_ref(&s->conn, p, n) < 0)
		s->fails++;
}

static void
load_sess_quit(struct load_sess *s)
{
	load_sess_send(s, LOAD_QUIT, sizeof(LOAD_QUIT) - 1);
	conn_flush(&s->conn);
	load_sess_expect(s, LS_QUIT);
}

static void
load_sess_rset(struct load_sess *s)
{
	load_sess_send(s, LOAD_RSET, sizeof(LOAD_RSET) - 1);
	conn_flush(&s->conn);
	load_sess_expect(s, LS_RSET);
}

/* The transaction ended with a refusal: count it by code, then RSET (RFC 5321 4.1.1.5). */
static void
load_sess_refuse(struct load_sess *s, int code)
{
	load_inc(&s->w->st.refused[code], 1);
	s->in_tx = 0;
	if (code == 421) {
		/* The server is closing the connection (RFC 5321 3.8). */
		s->fails++;
		load_sess_drop(s);
		return;
	}
	s->fails = 0;
	load_sess_rset(s);
}

static void
load_sess_message(struct load_sess *s)
{
	struct load_worker *w = s->w;
	const struct load_msg *m = &w->cfg->msg;

	if (s->rcpt_bad)
		load_inc(&w->st.rcpt_refused, s->rcpt_bad);
	w->seq++;
	s->hdr_len = load_msg_header(m, s->hdr, w->idx, w->seq, load_worker_date(w),
				     &s->id_off, &s->id_len);
	load_sess_send(s, s->hdr, s->hdr_len);
	load_sess_send(s, m->body, m->body_wire_len);
	load_sess_send(s, LOAD_DOT, sizeof(LOAD_DOT) - 1);
	conn_flush(&s->conn);
	load_sess_expect(s, LS_FINAL);
}

void
load_sess_go(struct load_sess *s)
{
	struct load_worker *w = s->w;
	const struct load_msg *m = &w->cfg->msg;

	if (s->prepaid) {
		s->prepaid = 0;
		if (!load_worker_live(w)) {
			load_sess_quit(s);
			return;
		}
	} else if (!load_worker_claim(w)) {
		load_sess_quit(s);
		return;
	}
	s->in_tx = 1;
	s->on_conn++;
	s->reply_idx = 0;
	s->rcpt_ok = s->rcpt_bad = 0;
	s->mail_code = s->rcpt_code = 0;
	load_inc(&w->st.sent, 1);
	s->t0_ns = load_now_ns();
	if (w->cfg->pipelining && s->can_pipe) {
		load_sess_send(s, m->cmds, m->cmds_len);
		load_sess_expect(s, LS_PIPE);
	} else {
		load_sess_send(s, m->cmds, m->mail_len);
		load_sess_expect(s, LS_MAIL);
	}
	conn_flush(&s->conn);
}

static void
load_sess_next(struct load_sess *s)
{
	struct load_worker *w = s->w;
	unsigned k = w->cfg->per_conn;

	if ((k && s->on_conn >= k) || !(s->prepaid || load_worker_more(w))) {
		load_sess_quit(s);
		return;
	}
	if (!load_worker_token(w, s)) {
		/* Queued by the worker; load_sess_go follows when a token comes. */
		timer_cancel(&w->ring.timers, &s->timer);
		s->state = LS_READY;
		return;
	}
	load_sess_go(s);
}

static void
load_sess_rcpt(struct load_sess *s, unsigned i)
{
	const struct load_msg *m = &s->w->cfg->msg;

	load_sess_send(s, m->cmds + m->rcpt_off[i], m->rcpt_off[i + 1] - m->rcpt_off[i]);
	conn_flush(&s->conn);
	load_sess_expect(s, LS_RCPT);
}

static void
load_sess_on_rcpt(struct load_sess *s, int code)
{
	const struct load_msg *m = &s->w->cfg->msg;

	if (code / 100 == 2) {
		s->rcpt_ok++;
	} else {
		s->rcpt_bad++;
		s->rcpt_code = code;
		if (code == 421) {
			load_sess_refuse(s, code);
			return;
		}
	}
	if (++s->reply_idx < m->recipients) {
		load_sess_rcpt(s, s->reply_idx);
		return;
	}
	if (s->rcpt_ok == 0) {
		/* No recipient left: the transaction is refused by the last RCPT reply. */
		load_sess_refuse(s, s->rcpt_code);
		return;
	}
	load_sess_send(s, m->cmds + m->data_off, m->cmds_len - m->data_off);
	conn_flush(&s->conn);
	load_sess_expect(s, LS_DATA);
}

/* Replies to a pipelined MAIL, RCPT x R, DATA group, in order. */
static void
load_sess_on_pipe(struct load_sess *s, int code)
{
	unsigned i = s->reply_idx++, r = s->w->cfg->msg.recipients;

	if (code == 421) {
		load_sess_refuse(s, code);
		return;
	}
	if (i == 0) {
		s->mail_code = code;
	} else if (i <= r) {
		if (code / 100 == 2) {
			s->rcpt_ok++;
		} else {
			s->rcpt_bad++;
			s->rcpt_code = code;
		}
	} else if (code == 354) {
		/* Whatever came before, the server now reads a message: give it one. */
		load_sess_message(s);
	} else if (s->mail_code / 100 != 2) {
		load_sess_refuse(s, s->mail_code);
	} else if (s->rcpt_ok == 0) {
		load_sess_refuse(s, s->rcpt_code);
	} else {
		load_sess_refuse(s, code);
	}
}

static void
load_sess_on_final(struct load_sess *s, int code)
{
	struct load_worker *w = s->w;

	hist_record(&w->st.lat, load_now_ns() - s->t0_ns);
	if (code / 100 != 2) {
		load_sess_refuse(s, code);
		return;
	}
	s->in_tx = 0;
	s->fails = 0;
	load_inc(&w->st.accepted, 1);
	load_inc(&w->st.bytes_accepted, s->hdr_len + w->cfg->msg.body_len);
	if (w->cfg->id_fd >= 0)
		load_worker_log_id(w, s->hdr + s->id_off, s->id_len);
	load_sess_next(s);
}

static void
load_sess_ehlo(struct load_sess *s)
{
	const struct load_msg *m = &s->w->cfg->msg;

	/* What the server offers is read again from this reply. */
	s->can_pipe = 0;
	load_sess_send(s, m->ehlo, m->ehlo_len);
	conn_flush(&s->conn);
	load_sess_expect(s, LS_EHLO);
}

static void
load_sess_tls_start(struct load_sess *s)
{
	const struct load_cfg *cfg = s->w->cfg;

	/* A reply line cut short in clear must not be completed by plaintext under TLS. */
	s->llen = 0;
	if (conn_tls_start(&s->conn, cfg->tls_ctx, 0, cfg->tls_sni) < 0) {
		load_sess_fail(s, &s->w->st.connect_errors);
		return;
	}
	load_sess_expect(s, LS_TLS);
}

/* EHLO accepted: STARTTLS first, then AUTH, then transactions. */
static void
load_sess_on_ehlo(struct load_sess *s)
{
	const struct load_cfg *cfg = s->w->cfg;

	if (cfg->tls == LOAD_TLS_STARTTLS && !s->tls_up) {
		load_sess_send(s, LOAD_STARTTLS, sizeof(LOAD_STARTTLS) - 1);
		conn_flush(&s->conn);
		load_sess_expect(s, LS_STARTTLS);
		return;
	}
	if (cfg->msg.auth) {
		load_sess_send(s, cfg->msg.auth, cfg->msg.auth_len);
		conn_flush(&s->conn);
		load_sess_expect(s, LS_AUTH);
		return;
	}
	load_sess_next(s);
}

static void
load_sess_on_greeting(struct load_sess *s, int code)
{
	const struct load_cfg *cfg = s->w->cfg;
	const struct load_msg *m = &cfg->msg;

	switch (s->state) {
	case LS_BANNER:
		if (code != 220)
			break;
		load_sess_ehlo(s);
		return;
	case LS_EHLO:
		if (code / 100 == 2) {
			load_sess_on_ehlo(s);
			return;
		}
		/* STARTTLS and AUTH are ESMTP: without EHLO there is no going on. */
		if (cfg->tls == LOAD_TLS_STARTTLS || m->auth)
			break;
		/* An old server: HELO, and no ESMTP extensions. */
		s->can_pipe = 0;
		load_sess_send(s, m->helo, m->helo_len);
		conn_flush(&s->conn);
		load_sess_expect(s, LS_HELO);
		return;
	case LS_STARTTLS:
		if (code != 220)
			break;
		load_sess_tls_start(s);
		return;
	case LS_AUTH:
		if (code == 235) {
			load_sess_next(s);
			return;
		}
		load_inc(&s->w->st.auth_failures, 1);
		break;
	default:
		if (code / 100 == 2) {
			load_sess_next(s);
			return;
		}
		break;
	}
	/* Not let in: a connect error; say goodbye unless the server already did. */
	load_inc(&s->w->st.connect_errors, 1);
	s->fails++;
	if (code == 421 || code == 554)
		s->quitting = 1;
	load_sess_quit(s);
}

static void
load_sess_reply(struct load_sess *s, int code)
{
	switch (s->state) {
	case LS_BANNER:
	case LS_EHLO:
	case LS_HELO:
	case LS_STARTTLS:
	case LS_AUTH:
		load_sess_on_greeting(s, code);
		return;
	case LS_MAIL:
		if (code / 100 != 2) {
			load_sess_refuse(s, code);
			return;
		}
		load_sess_rcpt(s, 0);
		return;
	case LS_RCPT:
		load_sess_on_rcpt(s, code);
		return;
	case LS_DATA:
		if (code != 354) {
			load_sess_refuse(s, code);
			return;
		}
		load_sess_message(s);
		return;
	case LS_PIPE:
		load_sess_on_pipe(s, code);
		return;
	case LS_FINAL:
		load_sess_on_final(s, code);
		return;
	case LS_RSET:
		if (code == 421) {
			s->fails++;
			load_sess_drop(s);
			return;
		}
		load_sess_next(s);
		return;
	case LS_QUIT:
		/*
		 * Close at once, like smtp-source: waiting for the server's FIN
		 * would stall on a server that waits for ours.
		 */
		s->closing_ok = 1;
		load_sess_drop(s);
		return;
	default:
		/* Nothing asked: a 421 on an idle connection, or noise. */
		load_sess_fail(s, &s->w->st.disconnects);
		return;
	}
}

static int
load_sess_is_pipelining(const char *l, size_t n)
{
	/* "250-PIPELINING\r\n" or the last line "250 PIPELINING". */
	return n >= 14 && strncasecmp(l + 4, "PIPELINING", 10) == 0 &&
	       (n == 14 || l[14] == '\r' || l[14] == '\n' || l[14] == ' ');
}

/* One complete reply line (LF included). */
static void
load_sess_line(struct load_sess *s, const char *l, size_t n)
{
	int code;

	if (n < 4 || l[0] < '1' || l[0] > '5' || l[1] < '0' || l[1] > '9' ||
	    l[2] < '0' || l[2] > '9') {
		load_sess_fail(s, &s->w->st.disconnects);
		return;
	}
	code = (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0');
	if (s->state == LS_EHLO && load_sess_is_pipelining(l, n))
		s->can_pipe = 1;
	if (l[3] == '-')
		return;
	load_sess_reply(s, code);
}

static void
load_sess_keep(struct load_sess *s, const char *p, size_t n)
{
	/* Only the code and a keyword matter: an over-long line may lose its tail. */
	if (n > sizeof(s->line) - s->llen)
		n = sizeof(s->line) - s->llen;
	memcpy(s->line + s->llen, p, n);
	s->llen += (uint32_t)n;
}

static void
load_sess_on_recv(struct conn *c, char *data, size_t len, int bid)
{
	struct load_sess *s = c->owner;
	const char *p = data, *end = data + len;

	(void)bid;
	/* LS_TLS: the rest of a clear receive after "220" is dropped (no injection, RFC 3207 5). */
	while (p < end && !c->closing && s->state != LS_TLS) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL) {
			load_sess_keep(s, p, (size_t)(end - p));
			return;
		}
		if (s->llen) {
			size_t n;

			load_sess_keep(s, p, (size_t)(nl + 1 - p));
			n = s->llen;
			s->llen = 0;
			load_sess_line(s, s->line, n);
		} else {
			load_sess_line(s, p, (size_t)(nl + 1 - p));
		}
		p = nl + 1;
	}
}

static void
load_sess_on_eof(struct conn *c, int err)
{
	struct load_sess *s = c->owner;

	(void)err;
	if (s->closing_ok || s->quitting || s->state == LS_QUIT) {
		load_sess_drop(s);
		return;
	}
	load_sess_fail(s, &s->w->st.disconnects);
}

static void
load_sess_on_connect(struct conn *c, int res)
{
	struct load_sess *s = c->owner;

	if (res < 0) {
		load_sess_fail(s, &s->w->st.connect_errors);
		return;
	}
	load_inc(&s->w->st.connections, 1);
	conn_recv_start(c);
	if (s->w->cfg->tls == LOAD_TLS_IMPLICIT) {
		/* RFC 8314: the handshake comes first, the greeting under TLS. */
		load_sess_tls_start(s);
		return;
	}
	load_sess_expect(s, LS_BANNER);
}

static void
load_sess_note_tls(struct load_sess *s)
{
	struct load_stats *st = &s->w->st;
	const char *v = conn_tls_version(&s->conn), *ci = conn_tls_cipher(&s->conn);

	load_inc(&st->tls_handshakes, 1);
	if (conn_tls_resumed(&s->conn))
		load_inc(&st->tls_resumed, 1);
	/* Read by main only after the worker ended. */
	snprintf(st->tls_version, sizeof(st->tls_version), "%s", v ? v : "?");
	snprintf(st->tls_cipher, sizeof(st->tls_cipher), "%s", ci ? ci : "?");
}

static void
load_sess_on_tls(struct conn *c, int err)
{
	struct load_sess *s = c->owner;
	struct load_worker *w = s->w;

	if (s->state != LS_TLS)
		return;
	if (err) {
		load_inc(&w->st.tls_failures, 1);
		if (!w->tls_err_said) {
			/* Once per worker: the reason is the same for every connection. */
			w->tls_err_said = 1;
			fprintf(stderr, "mxload: TLS handshake with %s failed: %s\n",
				w->cfg->target_str, conn_tls_error(c));
		}
		load_sess_fail(s, &w->st.connect_errors);
		return;
	}
	s->tls_up = 1;
	load_sess_note_tls(s);
	if (w->cfg->tls == LOAD_TLS_IMPLICIT) {
		load_sess_expect(s, LS_BANNER);
		return;
	}
	load_sess_ehlo(s);
}

static void
load_sess_on_closed(struct conn *c)
{
	struct load_sess *s = c->owner;
	struct load_worker *w = s->w;

	s->open = 0;
	if (!s->prepaid && s->fails <= LOAD_MAX_FAILS)
		s->prepaid = (unsigned)load_worker_claim(w);
	if (s->fails > LOAD_MAX_FAILS || !s->prepaid || !load_worker_live(w)) {
		s->state = LS_DONE;
		load_worker_sess_done(w);
		return;
	}
	if (s->fails) {
		s->state = LS_BACKOFF;
		timer_arm(&w->ring.timers, &s->timer, (uint64_t)LOAD_BACKOFF_MS * s->fails);
		return;
	}
	load_sess_start(s);
}

static const struct conn_ops load_sess_ops = {
	.on_recv = load_sess_on_recv,
	.on_eof = load_sess_on_eof,
	.on_connect = load_sess_on_connect,
	.on_closed = load_sess_on_closed,
	.on_tls = load_sess_on_tls,
};

static void
load_sess_timer(struct timer *t)
{
	struct load_sess *s = container_of(t, struct load_sess, timer);

	if (s->state == LS_BACKOFF) {
		load_sess_start(s);
		return;
	}
	if (s->closing_ok) {
		load_sess_drop(s);
		return;
	}
	load_sess_fail(s, &s->w->st.timeouts);
}

void
load_sess_init(struct load_sess *s, struct load_worker *w)
{
	memset(s, 0, sizeof(*s));
	s->w = w;
	s->state = LS_IDLE;
	timer_init(&s->timer, load_sess_timer);
}

void
load_sess_start(struct load_sess *s)
{
	struct load_worker *w = s->w;

	conn_init(&s->conn, &w->ring, -1, &load_sess_ops, s);
	s->open = 1;
	s->can_pipe = s->in_tx = s->quitting = s->closing_ok = s->tls_up = 0;
	s->on_conn = 0;
	s->llen = 0;
	if (conn_connect(&s->conn, &w->cfg->target, NULL, NULL) < 0) {
		/* No socket (EMFILE...): on_closed comes next turn and backs off. */
		load_sess_fail(s, &w->st.connect_errors);
		return;
	}
	load_sess_expect(s, LS_CONNECT);
}
